// The C API's runs (fabric_fit, fabric_resume) against fabric-train's: what resume prints, and
// processes an external launcher (torchrun) started, each of them the embedding app. Each C API
// run happens in a child process of its own (its stderr captured, the launcher variables set only
// there): this test binary executed again for the same test, which then makes the call and writes
// what it returned to a file. Executed, not only forked: a forked copy of a process whose OpenMP
// pool runs (an earlier test's training) hangs in its first parallel region. c_api_test.c covers
// the rest of the C API from C.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "distributed/cluster_env.h"
#include "runtime/c_api.h"
#include "tests/distributed/forked_run.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using Env = std::vector<std::pair<std::string, std::string>>;

constexpr auto kTimeout = std::chrono::seconds(180);
// Set in a child: the file it writes its call's result to, and the run directory it works on.
constexpr const char* kChildOut = "FABRIC_C_API_TEST_CHILD_OUT";
constexpr const char* kChildRun = "FABRIC_C_API_TEST_CHILD_RUN";

// The launcher variables this test sets, cleared for fabric-train and the children alike: a test
// run under torchrun or SLURM must not change the cases.
const char* const kLauncherVariables[] = {"WORLD_SIZE",           "RANK",        "LOCAL_RANK",
                                          "LOCAL_WORLD_SIZE",     "GROUP_RANK",  "NODE_RANK",
                                          "TORCHELASTIC_RUN_ID",  "MASTER_ADDR", "MASTER_PORT",
                                          "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"};
std::string env_without_launcher() {
  std::string env = "env";
  for (const char* v : kLauncherVariables) env += std::string(" -u ") + v;
  return env;
}

bool in_child() { return std::getenv(kChildOut) != nullptr; }
std::string child_run_dir() { return std::getenv(kChildRun); }

// In a child: the call's status, step and message, for the test that started it.
void report(fabric_status status, const fabric_run_result& r) {
  std::ofstream(std::getenv(kChildOut)) << "status=" << int(status) << "\nstep=" << r.step
                                        << "\nerror=" << fabric_last_error() << "\n";
}

struct Child {
  int code = -1;                          // the child's exit status (128 + signal)
  std::map<std::string, std::string> kv;  // what it reported
  std::string err;                        // its stderr
};

// Runs the current test again in a child process with the environment less the launcher
// variables plus `env`, working on `run_dir`; `name` names its files in `dir`.
Child run_child(const fs::path& dir, const std::string& name, const std::string& run_dir,
                const Env& env) {
  const testing::TestInfo* test = testing::UnitTest::GetInstance()->current_test_info();
  const std::string out = (dir / (name + ".out")).string();
  std::vector<std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var = *e;
    const std::string key = var.substr(0, var.find('='));
    bool launcher = false;
    for (const char* v : kLauncherVariables) launcher = launcher || key == v;
    if (!launcher) vars.push_back(var);
  }
  for (const auto& [k, v] : env) vars.push_back(k + "=" + v);
  vars.push_back(std::string(kChildOut) + "=" + out);
  vars.push_back(std::string(kChildRun) + "=" + run_dir);
  std::vector<char*> envp;
  for (std::string& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::string filter =
      std::string("--gtest_filter=") + test->test_suite_name() + "." + test->name();
  char* argv[] = {exe.data(), filter.data(), nullptr};
  // (Prepared before the fork: the child only executes.)
  const distributed::testing::Forked f = distributed::testing::run_forked(
      [&](int) {
        ::execve(exe.c_str(), argv, envp.data());
        ::_exit(127);
      },
      kTimeout, (dir / (name + ".err")).string());
  Child c;
  c.code = f.code;
  c.err = f.err;
  std::ifstream in(out);
  for (std::string line; std::getline(in, line);) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) c.kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return c;
}

int count(const std::string& text, const std::string& part) {
  int n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

class CApiRuns : public train_test::RunDirTest {
 protected:
  void SetUp() override {
    start("c_api_runs");
    if (IsSkipped()) return;
    cfg_ = FABRIC_CONFIG_DIR "/mlp-tensors.yaml";
  }
  // A child's call returned FABRIC_OK after `steps` steps.
  static void expect_done(const Child& c, const std::string& steps) {
    ASSERT_EQ(c.code, 0) << c.err;
    ASSERT_EQ(c.kv.count("status"), 1u) << c.err;
    EXPECT_EQ(c.kv.at("status"), "0") << c.kv.at("error") << "\n" << c.err;
    EXPECT_EQ(c.kv.at("step"), steps);
  }
};

// fabric_resume reads the run's config once before resuming (to refuse a run it would have to
// relaunch) and resume reads it again: the config's warnings are printed once, as `fabric-train
// resume` prints them. fabric.precision=bf16 (the legacy name of bf16-mixed, the run's own)
// resolves with a warning.
TEST_F(CApiRuns, ResumePrintsTheConfigsWarningsOnceAsFabricTrain) {
  if (in_child()) {
    const char* sets[] = {"trainer.max_steps=2", "fabric.precision=bf16"};
    fabric_run_result r{};
    report(fabric_resume(child_run_dir().c_str(), sets, 2, &r), r);
    return;
  }
  for (const char* run : {"run-c", "run-cli"}) {
    const train_test::Result r = fit("trainer.max_steps=1 fabric.precision=bf16-mixed", run);
    ASSERT_EQ(r.status, 0) << r.output;
  }
  const train_test::Result cli = train_test::run(
      "resume " + (dir_ / "run-cli").string() + " --set trainer.max_steps=2 fabric.precision=bf16",
      env_without_launcher());
  ASSERT_EQ(cli.status, 0) << cli.output;
  const std::string warning = "fabric-train: warning: ";
  ASSERT_EQ(count(cli.output, warning), 1) << cli.output;

  const Child c = run_child(dir_, "resume", (dir_ / "run-c").string(), {});
  expect_done(c, "2");
  EXPECT_EQ(count(c.err, warning), 1) << c.err;
  // The same warning.
  const size_t at = cli.output.find(warning);
  const std::string line = cli.output.substr(at, cli.output.find('\n', at) - at);
  EXPECT_NE(c.err.find(line), std::string::npos) << line << "\n" << c.err;
}

// fabric_validate resolves without Lightning's LT_* variables, as `fabric-train validate` does,
// but gives them back when it returns, having failed or not: it removed them from the app's
// environment, and a later fabric_fit then ran 32-true after validate had reported LT_PRECISION's
// 64-true.
TEST_F(CApiRuns, ValidateLeavesTheLightningVariablesForTheNextFit) {
  if (in_child()) {
    // Validate's results beside the file report() writes the fit's to.
    std::ofstream out(std::string(std::getenv(kChildOut)) + ".validate");
    const auto variables = [] {
      std::string all;
      for (const char* name : {"LT_PRECISION", "LT_ACCELERATOR", "LT_STRATEGY"}) {
        const char* v = std::getenv(name);
        all += std::string(name) + ":" + (v != nullptr ? v : "unset") + " ";
      }
      return all;
    };
    char* yaml = nullptr;
    out << "validated=" << int(fabric_validate(cfg_.c_str(), nullptr, 0, &yaml)) << "\n";
    const std::string resolved = yaml != nullptr ? yaml : "";
    fabric_string_free(yaml);
    out << "reported_64=" << (resolved.find("precision: 64-true") != std::string::npos) << "\n"
        << "after_validate=" << variables() << "\n";
    // Refused by fit's checks, which run without the variables: they come back all the same.
    const char* misfit[] = {"model.sizes=[5, 10]"};
    out << "refused=" << int(fabric_validate(cfg_.c_str(), misfit, 1, nullptr)) << "\n"
        << "after_refusal=" << variables() << "\n";
    const std::string run_set = "trainer.run_dir=" + child_run_dir();
    const char* sets[] = {"trainer.max_steps=1", run_set.c_str()};
    fabric_run_result r{};
    report(fabric_fit(cfg_.c_str(), sets, 2, &r), r);
    return;
  }
  const Child c = run_child(dir_, "validate", (dir_ / "run").string(),
                            {{"LT_PRECISION", "64-true"}, {"LT_ACCELERATOR", "cpu"}});
  expect_done(c, "1");
  std::map<std::string, std::string> validate;
  std::ifstream in(dir_ / "validate.out.validate");
  for (std::string line; std::getline(in, line);)
    if (const size_t eq = line.find('='); eq != std::string::npos)
      validate[line.substr(0, eq)] = line.substr(eq + 1);
  const std::string kept = "LT_PRECISION:64-true LT_ACCELERATOR:cpu LT_STRATEGY:unset ";
  EXPECT_EQ(validate["validated"], "0") << c.err;
  EXPECT_EQ(validate["reported_64"], "1");
  EXPECT_EQ(validate["after_validate"], kept);
  EXPECT_EQ(validate["refused"], std::to_string(int(FABRIC_CONFIG_ERROR)));
  EXPECT_EQ(validate["after_refusal"], kept);
  // The fit ran what validate reported.
  EXPECT_NE(train_test::slurp(dir_ / "run/config.yaml").find("precision: 64-true"),
            std::string::npos);
  EXPECT_NE(c.err.find("fabric.precision=64-true (LT_PRECISION)"), std::string::npos) << c.err;
}

// trainer.deterministic runs single-threaded for that run only: the embedding program's OpenMP
// thread count is back when fabric_fit returns (it stayed 1 for every later call). The library's
// OpenMP runtime is looked up at run time (the tests are not built with OpenMP).
TEST_F(CApiRuns, DeterministicFitGivesTheThreadCountBack) {
  using GetThreads = int (*)();
  using SetThreads = void (*)(int);
  auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
  auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  ASSERT_TRUE(get && set) << "the library's OpenMP runtime is not loaded";
  const int before = get();
  set(3);
  const std::string run_set = "trainer.run_dir=" + (dir_ / "det").string();
  const char* sets[] = {"trainer.max_steps=1", "trainer.deterministic=true", run_set.c_str()};
  fabric_run_result r{};
  EXPECT_EQ(fabric_fit(cfg_.c_str(), sets, 3, &r), FABRIC_OK) << fabric_last_error();
  EXPECT_EQ(get(), 3);
  set(before);
}

// Under a file-size limit a C API run fails as fabric-train does ("File too large", FABRIC_ERROR)
// instead of the kernel's SIGXFSZ killing the app mid-write (exit 153, no message, a torn
// temporary left); SIGXFSZ is the app's own again after the call.
TEST_F(CApiRuns, AFileSizeLimitIsAnErrorNotAKill) {
  if (in_child()) {
    std::signal(SIGXFSZ, SIG_DFL);
    rlimit limit{};
    getrlimit(RLIMIT_FSIZE, &limit);
    limit.rlim_cur = 16 * 1024;  // metrics.csv fits, a checkpoint does not
    setrlimit(RLIMIT_FSIZE, &limit);
    const std::string run_set = "trainer.run_dir=" + child_run_dir();
    const char* sets[] = {"trainer.max_steps=2", run_set.c_str()};
    fabric_run_result r{};
    const fabric_status status = fabric_fit(cfg_.c_str(), sets, 2, &r);
    report(status, r);
    struct sigaction now {};
    sigaction(SIGXFSZ, nullptr, &now);
    std::ofstream(std::getenv(kChildOut), std::ios::app)
        << "restored=" << (now.sa_handler == SIG_DFL ? 1 : 0) << "\n";
    return;
  }
  const Child c = run_child(dir_, "fsize", (dir_ / "run").string(), {});
  ASSERT_EQ(c.code, 0) << "the child was killed: " << c.code << "\n" << c.err;
  ASSERT_EQ(c.kv.count("status"), 1u) << c.err;
  EXPECT_EQ(c.kv.at("status"), std::to_string(int(FABRIC_ERROR)));
  EXPECT_NE(c.kv.at("error").find("File too large"), std::string::npos) << c.kv.at("error");
  ASSERT_EQ(c.kv.count("restored"), 1u);
  EXPECT_EQ(c.kv.at("restored"), "1");
}

// An app torchrun started alone (WORLD_SIZE=1) fits as it does without torchrun.
TEST_F(CApiRuns, FitUnderTorchrunWithWorldSizeOne) {
  if (in_child()) {
    const std::string run_set = "trainer.run_dir=" + child_run_dir();
    const char* sets[] = {"trainer.max_steps=2", run_set.c_str()};
    fabric_run_result r{};
    report(fabric_fit(cfg_.c_str(), sets, 2, &r), r);
    return;
  }
  const Child c = run_child(dir_, "fit", (dir_ / "run").string(),
                            {{"TORCHELASTIC_RUN_ID", "c-api-test"},
                             {"WORLD_SIZE", "1"},
                             {"RANK", "0"},
                             {"LOCAL_RANK", "0"},
                             {"LOCAL_WORLD_SIZE", "1"},
                             {"MASTER_ADDR", "127.0.0.1"},
                             {"MASTER_PORT", "29500"}});
  expect_done(c, "2");
  EXPECT_TRUE(fs::exists(dir_ / "run/checkpoints/last/model.safetensors"));
}

// Two processes as torchrun starts them (each one the app, calling fabric_fit with the same
// config of fabric.devices=2) train one DDP run, as `fabric-train fit --devices 2` does with its
// own launcher: the same weights, byte for byte, and the same metrics. Only a run whose other
// ranks fit would start by re-running this program is refused (c_api_test.c).
TEST_F(CApiRuns, FitUnderTorchrunWithTwoRanksIsFabricTrainsDdpRun) {
  if (in_child()) {
    const std::string run_set = "trainer.run_dir=" + child_run_dir();
    const char* sets[] = {"trainer.max_steps=3", "fabric.strategy=ddp", "fabric.devices=2",
                          run_set.c_str()};
    fabric_run_result r{};
    report(fabric_fit(cfg_.c_str(), sets, 4, &r), r);
    return;
  }
  const train_test::Result cli =
      train_test::run("fit " + cfg_ +
                          " --set trainer.max_steps=3 fabric.strategy=ddp fabric.devices=2 "
                          "trainer.run_dir=" +
                          (dir_ / "run-cli").string(),
                      env_without_launcher() + " timeout 180");
  ASSERT_EQ(cli.status, 0) << cli.output;

  const std::string port = std::to_string(distributed::find_free_port("127.0.0.1"));
  const std::string run_c = (dir_ / "run-c").string();
  auto rank_env = [&](int rank) {
    return Env{{"TORCHELASTIC_RUN_ID", "c-api-test"},
               {"WORLD_SIZE", "2"},
               {"LOCAL_WORLD_SIZE", "2"},
               {"RANK", std::to_string(rank)},
               {"LOCAL_RANK", std::to_string(rank)},
               {"GROUP_RANK", "0"},
               {"MASTER_ADDR", "127.0.0.1"},
               {"MASTER_PORT", port}};
  };
  Child ranks[2];
  std::thread other([&] { ranks[1] = run_child(dir_, "rank1", run_c, rank_env(1)); });
  ranks[0] = run_child(dir_, "rank0", run_c, rank_env(0));
  other.join();
  for (const Child& c : ranks) expect_done(c, "3");
  ASSERT_TRUE(fs::exists(dir_ / "run-c/checkpoints/last/model.safetensors"));
  // (Compared as booleans: a difference would print megabytes of weights.)
  EXPECT_TRUE(train_test::slurp(dir_ / "run-c/checkpoints/last/model.safetensors") ==
              train_test::slurp(dir_ / "run-cli/checkpoints/last/model.safetensors"));
  EXPECT_EQ(train_test::slurp(dir_ / "run-c/metrics.csv"),
            train_test::slurp(dir_ / "run-cli/metrics.csv"));
}

}  // namespace
}  // namespace fabric
