// fabric-train: YAML configs in, trained checkpoints out.
//   fabric-train                                   the bundled default (char GPT on Jane Austen)
//   fabric-train fit CONFIG.yaml [--set k=v ...] [--print-config]
//   fabric-train resume RUN_DIR [--set k=v ...]
//   fabric-train validate CONFIG.yaml [--set k=v ...]
//   fabric-train sample CHECKPOINT --prompt TEXT --tokens N
//   fabric-train export CHECKPOINT OUT.safetensors [--dequantize [--dtype float16]]
//                                                  CHECKPOINT: RUN_DIR/checkpoints/last (or
//                                                  step-N), RUN_DIR itself, or a checkpoint's
//                                                  model.safetensors
//   fabric-train consolidate DIR OUT                a sharded (FSDP) checkpoint -> a full one
//                                                  (OUT.safetensors: the model's state_dict alone)
//   fabric-train schema                            the config keys as a Markdown table
// Launch options (before or after the command), as the reference's `fabric run`:
//   --devices N  --num-nodes N  --node-rank R  --main-address HOST  --main-port PORT
// --devices and --num-nodes set fabric.devices / fabric.num_nodes; the address and port are
// exported as MASTER_ADDR / MASTER_PORT and the node rank as NODE_RANK for the launcher (with
// `fabric run`'s defaults 127.0.0.1, 29400 and 0 once any multi-node option is given).
// Lightning's LT_ACCELERATOR, LT_STRATEGY, LT_DEVICES, LT_NUM_NODES and LT_PRECISION (as `fabric
// run` sets them) fold into the config's fabric section (load_train_config): a key the config
// leaves at its default takes the variable's value; one it sets otherwise is a config error. Exit
// status: 0 done, 2 a bad config or command line (nothing written), 1 any other error. A path
// argument that does not exist is a bad command line (2); one that exists but cannot be read as
// what the command takes (no checkpoint there, a damaged file) is another error (1).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "runtime/dequantized_export.h"
#include "runtime/fabric_home.h"
#include "runtime/sample_stream.h"
#include "runtime/sharded_checkpoint.h"
#include "runtime/train_config.h"
#include "runtime/trainer.h"

namespace fs = std::filesystem;
using namespace fabric;

namespace {

// CLI11's NonNegativeNumber refuses "--temperature -1" with "Value -1 not in range 0.000000 to
// 179769313486231570814527..." (DBL_MAX, 309 digits) and lets "nan" through to fail later (exit 1).
// This says what is expected, in words, and refuses non-finite values too.
CLI::Validator at_least(double low, const std::string& expected) {
  return CLI::Validator(
      [low, expected](std::string& s) -> std::string {
        char* end = nullptr;
        const double x = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0' || !std::isfinite(x) || x < low)
          return "expected " + expected + ", got '" + s + "'";
        return "";
      },
      low > 0 ? "POSITIVE" : "NONNEGATIVE");  // as --help showed them
}

// A whole number in [min, max]: CLI11's integer conversion saturates ("--seed 99999999999999999999"
// ran with 2^64 - 1), and "1e3" or "1.5" are no counts.
CLI::Validator whole_number(uint64_t min, uint64_t max) {
  return CLI::Validator(
      [min, max](std::string& s) -> std::string {
        const std::string expected = "expected an integer >= " + std::to_string(min);
        if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
          return expected + ", got '" + s + "'";
        errno = 0;
        const unsigned long long x = std::strtoull(s.c_str(), nullptr, 10);
        if (errno == ERANGE || x > max)
          return expected + " and <= " + std::to_string(max) + ", got '" + s + "' (too large)";
        if (x < min) return expected + ", got '" + s + "'";
        return "";
      },
      min > 0 ? "POSITIVE" : "NONNEGATIVE");
}

TrainConfig default_config(const std::vector<std::string>& overrides) {
  const fs::path home = fabric_home();  // runtime/fabric_home.h: the C API's too
  const fs::path cfg = home / "tools/configs/gpt-austen.yaml";
  const fs::path corpus = home / "data/austen.txt";
  // Without this the missing corpus was reported as "--set data.path: no such file", a --set the
  // user never gave. The install step makes the file; a `--set data.path=...` trains on another.
  const bool other_text = std::any_of(overrides.begin(), overrides.end(), [](const std::string& o) {
    return o.starts_with("data.path=");
  });
  std::error_code ec;
  if (!other_text && !fs::is_regular_file(corpus, ec))
    throw ConfigError(
        "the bundled default trains on " + corpus.string() +
        ", which is missing: tools/build.sh extracts it from data/janeaustenr/ (which "
        "tools/install-deps.sh fetches); or train on another text with "
        "--set data.path=FILE");
  std::vector<std::string> o = {string_override("data.path", corpus.string())};
  o.insert(o.end(), overrides.begin(), overrides.end());
  return load_train_config(
      fs::exists(cfg) ? cfg.string() : (home / "configs/gpt-austen.yaml").string(), o, {},
      lightning_environment());
}

// A path argument that names nothing is a wrong command line (exit 2), told with what the command
// expected there. One that cannot be looked at (a directory without permission) passes: the command
// itself says why it cannot read it.
CLI::Validator existing(const std::string& expected) {
  return CLI::Validator(
      [expected](std::string& path) {
        std::error_code ec;
        if (fs::status(path, ec).type() != fs::file_type::not_found) return std::string();
        return "'" + path + "' does not exist (expected " + expected + ")";
      },
      "PATH(existing)");
}

}  // namespace

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) then fails the write with EFBIG, which the writers report as an
  // IOError naming the file and leave the earlier file as it was; by default the kernel's SIGXFSZ
  // would kill the run mid-write without a word.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"fabric-train: train models from YAML configs (fabric runtime).\n"
               "With no command it trains the bundled default: a character GPT on Jane Austen's novels."};
  app.require_subcommand(0, 1);
  std::vector<std::string> sets;
  std::string config_path, run_dir, checkpoint, out_file, prompt;  // prompt: encode_prompt's empty
  int64_t tokens = 200;
  double temperature = 0.8;
  int64_t top_k = 0;
  uint64_t seed = 0;
  bool print_config = false;
  constexpr auto int64_max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

  app.add_option("--set", sets, "override a key of the bundled default config");
  auto* fit = app.add_subcommand("fit", "train from a config file");
  fit->add_option("config", config_path, "the YAML config")->required();
  fit->add_option("--set", sets, "override a key: --set trainer.max_steps=10 fabric.precision=bf16-mixed");
  fit->add_flag("--print-config,--print_config", print_config, "print the resolved config and exit");
  auto* res = app.add_subcommand("resume", "continue a run from its last checkpoint");
  res->add_option("run_dir", run_dir, "the run directory")
      ->required()
      ->check(existing("a run directory: the trainer.run_dir of a fit"));
  res->add_option("--set", sets, "override a key, e.g. --set trainer.max_steps=200 to extend the run");
  auto* val = app.add_subcommand("validate", "check a config and print it resolved (defaults filled in)");
  val->add_option("config", config_path, "the YAML config")->required();
  val->add_option("--set", sets, "override a key");
  auto* smp = app.add_subcommand("sample", "generate text from a GPT checkpoint trained on text");
  const std::string a_checkpoint =
      "a checkpoint: RUN_DIR/checkpoints/last (or step-N), RUN_DIR, or a checkpoint's "
      "model.safetensors";
  smp->add_option("checkpoint", checkpoint, a_checkpoint)
      ->required()
      ->check(existing(a_checkpoint));
  smp->add_option(
      "--prompt", prompt,
      "the text to continue (default: the start of a line, a newline when the text had one, else "
      "the vocabulary's first character)");
  smp->add_option("--tokens", tokens, "characters to generate")->check(whole_number(0, int64_max));
  smp->add_option("--temperature", temperature, "sampling temperature (0: greedy)")
      ->check(at_least(0, "a finite number >= 0"));
  smp->add_option("--top-k", top_k, "keep only the k most likely characters (0: all)")
      ->check(whole_number(0, int64_max));
  smp->add_option("--seed", seed, "sampling seed")
      ->check(whole_number(0, std::numeric_limits<uint64_t>::max()));
  auto* exp = app.add_subcommand("export", "write the model weights alone to a safetensors file");
  exp->add_option("checkpoint", checkpoint, a_checkpoint)
      ->required()
      ->check(existing(a_checkpoint));
  exp->add_option("out", out_file, "the output .safetensors file")->required();
  bool dequantize = false;
  std::string export_dtype = "float32";
  auto* dequantize_flag = exp->add_flag(
      "--dequantize", dequantize,
      "write the plain float state_dict a 32-true model of the same config loads: "
      "quantized and FP8 weights dequantized, LoRA adapters merged (W + alpha/rank * B A)");
  exp->add_option("--dtype", export_dtype,
                  "the floating dtype --dequantize writes (default float32)")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16"}))
      ->needs(dequantize_flag);
  auto* con = app.add_subcommand("consolidate", "turn a sharded FSDP checkpoint into a full one, loadable by any run");
  con->add_option("dir", checkpoint, "the sharded checkpoint directory (it holds meta.json)")
      ->required()
      ->check(existing("a sharded checkpoint directory (it holds meta.json)"));
  con->add_option("out", out_file,
                  "OUT.safetensors: the model's full state_dict in one file (what a single-process model loads); "
                  "any other name: the full checkpoint directory (model, optimizer and the rest of the state)")
      ->required();
  auto* sch = app.add_subcommand("schema", "print every config key with its type, default and meaning (Markdown)");
  std::string devices;
  int64_t num_nodes = 0, node_rank = -1, main_port = 0;
  std::string main_address;
  for (CLI::App* sub : {static_cast<CLI::App*>(&app), fit, res}) {
    sub->add_option("--devices", devices, "processes (cpu) or GPUs per node; sets fabric.devices");
    sub->add_option("--num-nodes,--num_nodes", num_nodes, "number of nodes; sets fabric.num_nodes")
        ->check(whole_number(1, int64_max));
    sub->add_option("--node-rank,--node_rank", node_rank, "this node's rank (multi-node)")
        ->check(whole_number(0, int64_max));
    sub->add_option("--main-address,--main_address", main_address, "address of node 0 (MASTER_ADDR)");
    sub->add_option("--main-port,--main_port", main_port, "port of the rendezvous on node 0 (MASTER_PORT)")
        ->check(CLI::Range(1, 65535));
  }
  app.footer("The config schema (every key, its type, default and meaning): `fabric-train schema`, or the README.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  // Launch options become config overrides and the variables the launcher and ranks read.
  if (!devices.empty()) sets.push_back("fabric.devices=" + devices);
  if (num_nodes > 0) sets.push_back("fabric.num_nodes=" + std::to_string(num_nodes));
  if (node_rank >= 0) ::setenv("NODE_RANK", std::to_string(node_rank).c_str(), 1);
  if (!main_address.empty()) ::setenv("MASTER_ADDR", main_address.c_str(), 1);
  if (main_port > 0) ::setenv("MASTER_PORT", std::to_string(main_port).c_str(), 1);
  // A multi-node launch takes the reference's `fabric run` defaults for what neither a flag nor
  // the environment gives: node rank 0, main address 127.0.0.1, main port 29400.
  if (num_nodes > 1 || node_rank >= 0 || !main_address.empty() || main_port > 0) {
    ::setenv("NODE_RANK", "0", /*overwrite=*/0);
    ::setenv("MASTER_ADDR", "127.0.0.1", 0);
    ::setenv("MASTER_PORT", "29400", 0);
  }

  try {
    if (*fit || *val) {
      // Relative paths: the current directory, the config's, then fabric's home (bundled data).
      // Lightning's LT_* variables (`fabric run`) fold into the config, so that what runs is what
      // config.yaml, validate and --print-config say; fit then sets them to the config's values.
      const TrainConfig cfg =
          load_train_config(config_path, sets, {fabric_home()}, lightning_environment());
      if (*val || print_config) {
        // The check runs on one cpu process: the config holds the variables' values now.
        clear_lightning_environment();
        check_fit_config(cfg);  // what fit checks before writing anything
        std::cout << dump_train_config(cfg);
        return 0;
      }
      align_lightning_environment(cfg);
      fabric::fit(cfg);
    } else if (*res) {
      fabric::resume(run_dir, sets);
    } else if (*smp) {
      // Printed as it is generated: a long --tokens shows progress instead of a silent wait.
      stream_sample_checkpoint(std::cout, checkpoint, prompt, tokens, temperature, top_k, seed);
      std::cout << "\n";
    } else if (*sch) {
      std::cout << train_config_schema();
    } else if (*exp) {
      if (dequantize) {
        export_dequantized_checkpoint(checkpoint, out_file,
                                      export_dtype_named(export_dtype, "--dtype"));
      } else {
        export_checkpoint(checkpoint, out_file);
      }
      std::cout << "wrote " << out_file << "\n";
    } else if (*con) {
      if (out_file.ends_with(".safetensors")) {
        consolidate_model_weights(checkpoint, out_file);
      } else {
        consolidate_checkpoint(checkpoint, out_file);
      }
      std::cout << "wrote " << out_file << "\n";
    } else {
      const TrainConfig cfg = default_config(sets);
      align_lightning_environment(cfg);
      fabric::fit(cfg);
    }
  } catch (const ConfigError& e) {
    std::cerr << "fabric-train: config error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "fabric-train: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
