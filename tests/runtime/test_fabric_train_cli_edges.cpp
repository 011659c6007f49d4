// fabric-train's command line at its edges, end to end through the binary: what `sample` and
// `export` accept as CHECKPOINT, the exit status of a path that does not exist (2) and of one that
// is no run or checkpoint (1), a fit into a run directory that holds an earlier run's checkpoints,
// the --set values a resume cannot honour, and the max_epochs default of a config with no limit.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/run_directory.h"
#include "tensor/random.h"
#include "tests/runtime/fabric_train_contract.h"
#include "tests/runtime/fabric_train_metrics.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using namespace train_test;

class FabricTrainCliEdges : public FabricTrain {
 protected:
  // A character GPT on a short text, fitted into dir_/gpt: what `sample` reads.
  fs::path fit_text_gpt() {
    std::ofstream(dir_ / "tiny.txt")
        << "hello world, hello fabric. the quick brown fox jumps over the lazy dog. "
           "it is a truth universally acknowledged.";
    const std::string cfg = (dir_ / "gpt.yaml").string();
    std::ofstream(cfg) << "model: {name: gpt, block_size: 16, n_layer: 1, n_head: 2, n_embd: 16}\n"
                          "data: {kind: text, path: "
                       << (dir_ / "tiny.txt").string()
                       << "}\n"
                          "optimizer: {name: adamw, lr: 0.01}\n"
                          "trainer: {max_steps: 2, batch_size: 4, run_dir: "
                       << (dir_ / "gpt").string() << "}\n";
    const Result r = run("fit " + cfg);
    EXPECT_EQ(r.status, 0) << r.output;
    return dir_ / "gpt";
  }

  // The names in dir/checkpoints, sorted.
  static std::vector<std::string> checkpoints(const fs::path& run_dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(run_dir / "checkpoints"))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

// sample and export take the checkpoint directory, the run directory (its checkpoints/last) or
// the checkpoint's model.safetensors, and give the same result for all three.
TEST_F(FabricTrainCliEdges, SampleAndExportTakeARunDirectoryOrACheckpointsModelFile) {
  const fs::path run_dir = fit_text_gpt();
  const fs::path last = run_dir / "checkpoints/last";
  const Result expected_sample =
      run("sample " + last.string() + " --prompt hello --tokens 12 --temperature 0");
  ASSERT_EQ(expected_sample.status, 0) << expected_sample.output;
  ASSERT_EQ(run("export " + last.string() + " " + (dir_ / "expected.safetensors").string()).status,
            0);
  for (const fs::path& checkpoint : {run_dir, last / "model.safetensors"}) {
    const Result s =
        run("sample " + checkpoint.string() + " --prompt hello --tokens 12 --temperature 0");
    EXPECT_EQ(s.status, 0) << checkpoint << "\n" << s.output;
    EXPECT_EQ(s.output, expected_sample.output) << checkpoint;
    const fs::path out = dir_ / "w.safetensors";
    const Result e = run("export " + checkpoint.string() + " " + out.string());
    EXPECT_EQ(e.status, 0) << checkpoint << "\n" << e.output;
    EXPECT_EQ(slurp(out), slurp(dir_ / "expected.safetensors")) << checkpoint;
  }
}

// export makes OUT's folders as needed; a folder that is a file is an error of the files (exit 1).
TEST_F(FabricTrainCliEdges, ExportMakesTheFoldersOfItsOutput) {
  const fs::path run_dir = fit_text_gpt();
  const fs::path nested = dir_ / "exports/a/b/weights.safetensors";
  const Result made = run("export " + run_dir.string() + " " + nested.string());
  ASSERT_EQ(made.status, 0) << made.output;
  ASSERT_EQ(run("export " + run_dir.string() + " " + (dir_ / "flat.safetensors").string()).status,
            0);
  EXPECT_EQ(slurp(nested), slurp(dir_ / "flat.safetensors"));
  std::ofstream(dir_ / "a_file") << "x";
  const Result under_file =
      run("export " + run_dir.string() + " " + (dir_ / "a_file/w.safetensors").string());
  EXPECT_EQ(under_file.status, 1) << under_file.output;
  EXPECT_NE(under_file.output.find("export: cannot create the folder '" + (dir_ / "a_file").string()),
            std::string::npos)
      << under_file.output;
  // Over a file of a checkpoint (its own optimizer state here): refused, the checkpoint intact.
  const fs::path optimizer = run_dir / "checkpoints/last/optimizer.safetensors";
  const std::string before = slurp(optimizer);
  for (const std::string flag : {"", " --dequantize"}) {
    const Result over = run("export " + run_dir.string() + " " + optimizer.string() + flag);
    EXPECT_EQ(over.status, 1) << flag << "\n" << over.output;
    EXPECT_NE(over.output.find(optimizer.string() + " is a file of the checkpoint"),
              std::string::npos)
        << over.output;
  }
  EXPECT_EQ(slurp(optimizer), before);
}

// An OUT that names a folder (a trailing '/', or '.' or '..' last) is a bad command line (exit 2),
// refused before anything is made: its folders were made, then the write refused it (exit 1).
TEST_F(FabricTrainCliEdges, ExportRefusesAnOutThatNamesAFolder) {
  const fs::path run_dir = fit_text_gpt();
  for (const std::string flag : {"", " --dequantize"}) {
    const std::string out = (dir_ / "exports/a/b/c/").string();
    const Result r = run("export " + run_dir.string() + " " + out + flag);
    EXPECT_EQ(r.status, 2) << flag << "\n" << r.output;
    EXPECT_NE(r.output.find("config error: export: the output path '" + out +
                            "' names a folder (it ends in '/'); expected the path of a file to "
                            "write, such as " +
                            out + "model.safetensors"),
              std::string::npos)
        << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "exports")) << flag;
    const Result dots =
        run("export " + run_dir.string() + " " + (dir_ / "exports/..").string() + flag);
    EXPECT_EQ(dots.status, 2) << flag << "\n" << dots.output;
    EXPECT_NE(dots.output.find("names a folder (it ends in '..')"), std::string::npos)
        << dots.output;
    EXPECT_FALSE(fs::exists(dir_ / "exports")) << flag;
  }
}

// A path that does not exist is a command-line error (exit 2) naming what was expected; one that
// exists but is no run or checkpoint is an error of the files (exit 1). Nothing is written.
TEST_F(FabricTrainCliEdges, MissingPathExits2AndAPathOfAnotherKindExits1) {
  const fs::path run_dir = fit_text_gpt();
  const fs::path missing = dir_ / "nothing", empty = dir_ / "empty", out = dir_ / "out.safetensors";
  fs::create_directories(empty);
  // export's output: a weights file with no checkpoint beside it.
  ASSERT_EQ(
      run("export " + run_dir.string() + " " + (dir_ / "weights.safetensors").string()).status, 0);
  struct Case {
    std::string command;  // PATH stands for the path argument
    fs::path path;
    int status;
    std::string message;
  };
  const std::string sample = "sample PATH --prompt hello --tokens 2",
                    exp = "export PATH " + out.string(),
                    consolidate = "consolidate PATH " + (dir_ / "full").string();
  const std::vector<Case> cases = {
      {"resume PATH", missing, 2,
       "'" + missing.string() + "' does not exist (expected a run directory"},
      {sample, missing, 2,
       "'" + missing.string() +
           "' does not exist (expected a checkpoint: RUN_DIR/checkpoints/last"},
      {exp, missing, 2,
       "'" + missing.string() +
           "' does not exist (expected a checkpoint: RUN_DIR/checkpoints/last"},
      {consolidate, missing, 2,
       "does not exist (expected a sharded checkpoint directory (it holds meta.json))"},
      {"resume PATH", empty, 1,
       "fabric-train: error: " + (empty / "config.yaml").string() + ": not a run directory"},
      {sample, empty, 1,
       "fabric-train: error: sample: " + empty.string() +
           ": not a checkpoint directory (no state.json)"},
      {exp, empty, 1,
       "fabric-train: error: export: " + empty.string() +
           ": not a checkpoint directory (no state.json)"},
      {consolidate, empty, 1,
       "fabric-train: error: sharded checkpoint " + empty.string() + ": no meta.json"},
      {exp, dir_ / "weights.safetensors", 1, "is a file but not a checkpoint's model.safetensors"},
  };
  for (const Case& c : cases) {
    std::string command = c.command;
    command.replace(command.find("PATH"), 4, c.path.string());
    const Result r = run(command);
    EXPECT_EQ(r.status, c.status) << command << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos)
        << command << "\nexpected: " << c.message << "\n"
        << r.output;
    EXPECT_FALSE(fs::exists(out) || fs::exists(dir_ / "full") || fs::exists(empty / "config.yaml"))
        << command;
  }
}

// A fit into a run directory that holds an earlier run's checkpoints says so once, naming them and
// suggesting resume, and deletes none of them: keep_last prunes only the checkpoints this run
// wrote (a resume's: those of the run it continues, too).
TEST_F(FabricTrainCliEdges, FitIntoAUsedRunDirectoryWarnsAndKeepsTheEarlierCheckpoints) {
  const std::string cfg = write_contract();
  const fs::path run_dir = dir_ / "run";
  const Result first = run("fit " + cfg + " --set trainer.max_steps=4 trainer.checkpoint_every=2");
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_EQ(first.output.find("warning"), std::string::npos)
      << "a new run directory: nothing to say\n"
      << first.output;
  ASSERT_EQ(checkpoints(run_dir), (std::vector<std::string>{"last", "step-2", "step-4"}));

  // The second run writes step-1..3; keep_last 1 leaves its step-3 and the earlier run's step-4.
  const Result second = run(
      "fit " + cfg + " --set trainer.max_steps=3 trainer.checkpoint_every=1 trainer.keep_last=1");
  ASSERT_EQ(second.status, 0) << second.output;
  const std::string warning =
      "fabric-train: warning: checkpoint directory " + run_dir.string() +
      "/checkpoints exists and is not empty: it holds an earlier run's checkpoints "
      "(last, step-2, step-4)";
  EXPECT_NE(second.output.find(warning), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("fabric-train resume " + run_dir.string()), std::string::npos)
      << second.output;
  EXPECT_EQ(second.output.find("warning", second.output.find(warning) + warning.size()),
            std::string::npos)
      << "said once\n"
      << second.output;
  EXPECT_EQ(checkpoints(run_dir), (std::vector<std::string>{"last", "step-3", "step-4"}));

  // Resuming the second run (keep_last 1 from its config.yaml) prunes its step-3; resuming it
  // again from step 5 leaves the earlier run's step-4 although it lies below: the checkpoints hold
  // the id of the run that wrote them.
  const Result third =
      run("resume " + run_dir.string() + " --set trainer.max_steps=5 trainer.checkpoint_every=5");
  ASSERT_EQ(third.status, 0) << third.output;
  EXPECT_EQ(checkpoints(run_dir), (std::vector<std::string>{"last", "step-4", "step-5"}));
  const Result fourth = run("resume " + run_dir.string() +
                            " --set trainer.max_steps=6 "
                            "trainer.checkpoint_every=1 trainer.keep_last=1");
  ASSERT_EQ(fourth.status, 0) << fourth.output;
  EXPECT_EQ(checkpoints(run_dir), (std::vector<std::string>{"last", "step-4", "step-6"}));

  // A resume continues its own run: no warning, and keep_last prunes the run's earlier step-N too.
  fs::remove_all(run_dir);
  ASSERT_EQ(run("fit " + cfg +
                " --set trainer.max_steps=4 trainer.checkpoint_every=1 trainer.keep_last=2")
                .status,
            0);
  const Result resumed = run("resume " + run_dir.string() + " --set trainer.max_steps=6");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_EQ(resumed.output.find("warning"), std::string::npos) << resumed.output;
  EXPECT_EQ(checkpoints(run_dir), (std::vector<std::string>{"last", "step-5", "step-6"}));
}

// max_epochs counts the epochs a resumed run already went through, at whatever batch size and
// accumulation the resume sets (Lightning restores current_epoch): a finished one-epoch run
// resumed with a smaller batch trains nothing, and a second epoch takes the new batches per epoch.
TEST_F(FabricTrainCliEdges, ResumeCountsTheEpochsDoneWhateverTheBatchSize) {
  const std::string cfg = write_contract();  // 64 examples
  const std::string run_dir = (dir_ / "run").string();
  const Result fit =
      run("fit " + cfg + " --set trainer.max_steps=-1 trainer.max_epochs=1 trainer.batch_size=16");
  ASSERT_EQ(fit.status, 0) << fit.output;
  ASSERT_NE(fit.output.find("done: 4 steps"), std::string::npos) << fit.output;
  const fs::path last = fs::path(run_dir) / "checkpoints/last/state.json";
  const auto written = fs::last_write_time(last);
  const Result same = run("resume " + run_dir + " --set trainer.batch_size=8");
  ASSERT_EQ(same.status, 0) << same.output;
  EXPECT_NE(same.output.find("now at step 4)"), std::string::npos) << same.output;
  EXPECT_EQ(fs::last_write_time(last), written) << "a resume with nothing to do rewrote last";
  // Epoch 2 at 8 a batch: 8 steps.
  const Result second =
      run("resume " + run_dir + " --set trainer.batch_size=8 trainer.max_epochs=2");
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_NE(second.output.find("now at step 12)"), std::string::npos) << second.output;
  // Epoch 3 at 16 a batch, two batches a step: 2 steps.
  const Result third = run("resume " + run_dir +
                           " --set trainer.batch_size=16 trainer.max_epochs=3 "
                           "trainer.accumulate_grad_batches=2");
  ASSERT_EQ(third.status, 0) << third.output;
  EXPECT_NE(third.output.find("now at step 14)"), std::string::npos) << third.output;
}

// A resume restores the optimizer (kind, state, hyper-parameters), the RNG and data order and the
// weights from its checkpoint: a --set of those keys would change config.yaml but not the run. It
// is left out with a warning naming the value in effect, which config.yaml keeps; the keys that do
// take effect (trainer.max_steps) still do.
TEST_F(FabricTrainCliEdges, ResumeLeavesOutTheSetsItsCheckpointOverrules) {
  const std::string cfg = write_contract();  // sgd, lr 0.1, momentum 0.9, seed 0
  struct Case {
    std::string set;
    std::string config_line;  // as config.yaml keeps it
  };
  const std::string optimizer =
      "the optimizer, its state and its hyper-parameters are restored from the checkpoint";
  // Weights the model could not even load: a resume does not read them.
  save_safetensors((dir_ / "other.safetensors").string(), {{"encoder.weight", zeros({2, 2})}});
  for (const Case& c :
       {Case{"optimizer.lr=0.5", "\n  lr: 0.1\n"},
        Case{"optimizer.momentum=0", "\n  momentum: 0.9\n"},
        Case{"optimizer.name=adam", "\n  name: sgd\n"}, Case{"trainer.seed=7", "\n  seed: 0\n"},
        Case{"model.init=" + (dir_ / "other.safetensors").string(), "\n  init: \"\"\n"}}) {
    const fs::path run_dir = dir_ / "run";
    fs::remove_all(run_dir);
    ASSERT_EQ(run("fit " + cfg + " --set trainer.max_steps=2").status, 0);
    const Result r = run("resume " + run_dir.string() + " --set " + c.set + " trainer.max_steps=3");
    ASSERT_EQ(r.status, 0) << c.set << "\n" << r.output;
    EXPECT_NE(r.output.find("fabric-train: warning: resume: --set " + c.set + " (in effect: "),
              std::string::npos)
        << c.set << "\n"
        << r.output;
    EXPECT_NE(r.output.find("no effect on a resume"), std::string::npos) << r.output;
    const std::string config = slurp(run_dir / "config.yaml");
    EXPECT_NE(config.find(c.config_line), std::string::npos) << c.set << "\n" << config;
    EXPECT_NE(config.find("\n  max_steps: 3\n"), std::string::npos) << config;
    EXPECT_EQ(column(run_dir / "metrics.csv", "lr"),
              (std::vector<std::string>{"0.1", "0.1", "0.1"}))
        << c.set;
  }
  EXPECT_NE(run("resume " + (dir_ / "run").string() + " --set optimizer.lr=0.5 trainer.max_steps=4")
                .output.find(optimizer),
            std::string::npos);
  // The run's own value changes nothing: nothing to say.
  const Result same =
      run("resume " + (dir_ / "run").string() + " --set optimizer.lr=0.1 trainer.max_steps=5");
  ASSERT_EQ(same.status, 0) << same.output;
  EXPECT_EQ(same.output.find("warning"), std::string::npos) << same.output;
}

// A resume takes its weights from the checkpoint: the model.init file the fit started from may be
// gone, and config.yaml keeps naming it.
TEST_F(FabricTrainCliEdges, ResumeDoesNotNeedTheModelInitFile) {
  const std::string cfg = write_contract();
  const fs::path init = dir_ / "init.safetensors", run_dir = dir_ / "run";
  ASSERT_EQ(run("fit " + cfg + " --set trainer.max_steps=0").status, 0);
  ASSERT_EQ(run("export " + run_dir.string() + " " + init.string()).status, 0);
  fs::remove_all(run_dir);
  ASSERT_EQ(run("fit " + cfg + " --set trainer.max_steps=2 model.init=" + init.string()).status, 0);
  fs::remove(init);
  const Result r = run("resume " + run_dir.string() + " --set trainer.max_steps=3");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
  EXPECT_NE(slurp(run_dir / "config.yaml").find("init: " + init.string()), std::string::npos)
      << slurp(run_dir / "config.yaml");
  // Naming the same file again changes nothing (no warning); another one is left out, said.
  EXPECT_EQ(
      run("resume " + run_dir.string() + " --set trainer.max_steps=4 model.init=" + init.string())
          .output.find("warning"),
      std::string::npos);
  const Result other =
      run("resume " + run_dir.string() + " --set trainer.max_steps=5 model.init=elsewhere");
  ASSERT_EQ(other.status, 0) << other.output;
  EXPECT_NE(other.output.find("--set model.init=elsewhere (in effect: " + init.string() + ")"),
            std::string::npos)
      << other.output;
}

// sample's prompt is taken as given: a newline the text never had is refused as any other
// character (only the default, the start of a line, falls back to the text's first character);
// counts are whole numbers in range, not saturated.
TEST_F(FabricTrainCliEdges, SamplePromptAndCountsAreTakenAsGiven) {
  const fs::path run_dir = fit_text_gpt();  // its text has no newline
  const std::string sample = "sample " + run_dir.string() + " --tokens 3 --temperature 0";
  const Result by_default = run(sample);
  EXPECT_EQ(by_default.status, 0) << by_default.output;
  const Result newline = run(sample + " --prompt \"\n\"");
  EXPECT_EQ(newline.status, 2) << newline.output;
  EXPECT_NE(newline.output.find("not in the model's vocabulary: '\\n'"), std::string::npos)
      << newline.output;
  for (const std::string bad :
       {"--seed 18446744073709551616", "--seed 99999999999999999999", "--tokens 1.5",
        "--tokens 1e3", "--top-k 9223372036854775808", "--seed -1"}) {
    const Result r = run(sample + " " + bad);
    EXPECT_EQ(r.status, 2) << bad << "\n" << r.output;
    EXPECT_NE(r.output.find("expected an integer >= 0"), std::string::npos) << bad << "\n"
                                                                            << r.output;
  }
  EXPECT_EQ(run(sample + " --seed 18446744073709551615").status, 0);
}

// A file-size limit fails the write (EFBIG) instead of killing the run with SIGXFSZ mid-row: an
// error naming the file and the cause, no torn row, and the run resumes.
TEST_F(FabricTrainCliEdges, AFileSizeLimitIsAnErrorAndTheRunResumes) {
  const std::string cfg = write_contract();
  const fs::path run_dir = dir_ / "run";
  const Result limited =
      run("fit " + cfg +
              " --set model.sizes=[784,2,10] trainer.max_steps=5000 trainer.checkpoint_every=50",
          "ulimit -f 128;");
  EXPECT_EQ(limited.status, 1) << limited.output.substr(
      limited.output.size() > 2000 ? limited.output.size() - 2000 : 0);
  EXPECT_NE(limited.output.find(": File too large"), std::string::npos)
      << limited.output.substr(limited.output.size() > 2000 ? limited.output.size() - 2000 : 0);
  const std::string metrics = slurp(run_dir / "metrics.csv");
  ASSERT_FALSE(metrics.empty());
  EXPECT_EQ(metrics.back(), '\n') << "a torn row";
  const Result resumed = run("resume " + run_dir.string());
  EXPECT_EQ(resumed.status, 0) << resumed.output;
}

// Two runs on one run directory at once: the second is refused (exit 1) while the first goes on.
TEST_F(FabricTrainCliEdges, ASecondRunOnARunDirectoryInUseIsRefused) {
  const std::string cfg = write_contract();
  const fs::path run_dir = dir_ / "run";
  ASSERT_EQ(run("fit " + cfg + " --set trainer.max_steps=1").status, 0);
  // This process holds the directory as a running fit or resume does.
  const RunDirectoryLock held(run_dir.string());
  for (const std::string command :
       {"fit " + cfg + " --set trainer.max_steps=2", "resume " + run_dir.string()}) {
    const Result second = run(command);
    EXPECT_EQ(second.status, 1) << command << "\n" << second.output;
    EXPECT_NE(
        second.output.find("the run directory is in use by another fabric-train fit or resume"),
        std::string::npos)
        << second.output;
  }
}

// With neither trainer.max_steps nor trainer.max_epochs a run takes 1000 epochs, said on stderr
// in Lightning's words; max_steps alone keeps max_epochs -1, and an explicit max_epochs -1 (no
// epoch limit) needs max_steps.
TEST_F(FabricTrainCliEdges, WithoutAnyLimitTheRunTakes1000Epochs) {
  Generator gen(2);
  save_classification_data(dir_ / "small.safetensors", 8, 4, 2, gen);
  const std::string cfg = (dir_ / "no_limit.yaml").string();
  std::ofstream(cfg) << "model: {name: mlp, sizes: [4, 2]}\n"
                        "data: {kind: tensors, path: "
                     << (dir_ / "small.safetensors").string()
                     << "}\ntrainer: {batch_size: 8, log_every: 500, run_dir: "
                     << (dir_ / "run").string() << "}\n";
  const std::string warning =
      "fabric-train: warning: " + cfg +
      ": `trainer.max_epochs` was not set. Setting it to 1000 epochs. To train for a "
      "number of optimizer steps instead, set `trainer.max_steps`.";
  struct Case {
    std::string args;
    int status;
    std::string expected;  // in the output
    bool warns;
  };
  for (const Case& c :
       {Case{"validate " + cfg, 0, "\n  max_steps: -1\n  max_epochs: 1000\n", true},
        Case{"fit " + cfg + " --print-config", 0, "\n  max_epochs: 1000\n", true},
        Case{"validate " + cfg + " --set trainer.max_steps=3", 0,
             "\n  max_steps: 3\n  max_epochs: -1\n", false},
        Case{"validate " + cfg + " --set trainer.max_epochs=2", 0, "\n  max_epochs: 2\n", false},
        Case{"validate " + cfg + " --set trainer.max_epochs=-1", 2,
             "trainer.max_epochs: -1 (no epoch limit) needs trainer.max_steps >= 0", false},
        Case{"fit " + cfg, 0, "done: 1000 steps", true}}) {
    const Result r = run(c.args);
    EXPECT_EQ(r.status, c.status) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find(warning) != std::string::npos, c.warns) << c.args << "\n" << r.output;
  }
  // The run records its 1000 epochs: a resume says nothing more.
  EXPECT_NE(slurp(dir_ / "run/config.yaml").find("\n  max_epochs: 1000\n"), std::string::npos);
  const Result resumed = run("resume " + (dir_ / "run").string());
  EXPECT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_EQ(resumed.output.find("warning"), std::string::npos) << resumed.output;
}

// A new file inside a checkpoint would go with the folder at its next save: refused too.
TEST_F(FabricTrainCliEdges, ExportRefusesANewFileInsideACheckpoint) {
  const fs::path run_dir = fit_text_gpt();
  const fs::path inside = run_dir / "checkpoints/last/mine.safetensors";
  const Result r = run("export " + run_dir.string() + " " + inside.string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(inside.string() + " would be a file inside the checkpoint"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(inside));
}

// Export writes through a link at OUT (the link stays) and refuses a FIFO or a device there
// instead of replacing it with a regular file.
TEST_F(FabricTrainCliEdges, ExportWritesThroughALinkAndRefusesAFifo) {
  const fs::path run_dir = fit_text_gpt();
  const fs::path target = dir_ / "target.safetensors", link = dir_ / "link.safetensors";
  fs::create_symlink(target, link);
  const Result through = run("export " + run_dir.string() + " " + link.string());
  ASSERT_EQ(through.status, 0) << through.output;
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_TRUE(fs::is_regular_file(target));
  const fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const Result refused = run("export " + run_dir.string() + " " + fifo.string());
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_NE(refused.output.find("is not a regular file"), std::string::npos) << refused.output;
  EXPECT_EQ(fs::status(fifo).type(), fs::file_type::fifo);
}

// checkpoints/last damaged (no state.json): the resume falls back to the newest step-N, moves
// the damaged last aside (kept) and saves a new one, instead of failing at its first save with
// every step trained since lost.
TEST_F(FabricTrainCliEdges, ResumeFromAStepCheckpointPastAnIncompleteLastSavesANewLast) {
  const std::string cfg = write_tiny_gpt_config("run");
  ASSERT_EQ(run("fit " + cfg + " --set trainer.max_steps=4 trainer.checkpoint_every=2").status, 0);
  const fs::path last = dir_ / "run/checkpoints/last";
  fs::remove(last / "state.json");
  const Result r = run("resume " + (dir_ / "run").string() + " --set trainer.max_steps=6");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("moved the incomplete"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(last / "state.json"));
  EXPECT_TRUE(fs::exists(dir_ / "run/checkpoints/last.incomplete"));
  EXPECT_TRUE(fs::exists(dir_ / "run/checkpoints/step-6/state.json"));
}

// A run directory whose name means something in YAML ("#" starts a comment, ": " a mapping):
// resume, sample and the end-of-fit sample take the path as it is (they used to re-read it as
// YAML: exit 2, or another run resumed).
TEST_F(FabricTrainCliEdges, RunDirectoriesWithYamlCharactersResumeAndSample) {
  const std::string cfg = write_tiny_gpt_config("run");
  const fs::path run_dir = dir_ / "exp #2: a";
  const Result fit = run("fit " + cfg + " --set trainer.sample_tokens=3 'trainer.run_dir=\"" +
                         run_dir.string() + "\"'");
  ASSERT_EQ(fit.status, 0) << fit.output;
  const Result resumed = run("resume '" + run_dir.string() + "' --set trainer.max_steps=3");
  EXPECT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_TRUE(fs::exists(run_dir / "checkpoints/last/state.json"));
  const Result sampled =
      run("sample '" + (run_dir / "checkpoints/last").string() + "' --prompt the --tokens 2");
  EXPECT_EQ(sampled.status, 0) << sampled.output;
}

}  // namespace
}  // namespace fabric
