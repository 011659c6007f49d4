// CSVLogger's file as Python's csv module and Lightning write it, and when the disk fails:
// values as Python's repr (3.0, 0.0001, 1e-05), metric names with commas or quotes quoted, a write
// that fails (a full disk, a file-size limit) an IOError that leaves the earlier file as it was,
// a path of another kind an IOError (not a std::filesystem error), a link written through.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/loggers.h"
#include "tensor/error.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

class CsvLoggerFiles : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("fabric_csv_files_" + std::to_string(::getpid()) + "_" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  fs::path dir_;
};

TEST_F(CsvLoggerFiles, ValuesAreWrittenAsPythonsRepr) {
  const std::string path = (dir_ / "m.csv").string();
  {
    CSVLogger csv(path);
    const std::vector<double> values = {3.0,     0.0001, 1e-05, 1.5e16, 1e16,
                                        123.456, -0.0,   0.1,   2.5e-7, 1e15};
    for (size_t i = 0; i < values.size(); ++i) csv.log_metrics({{"v", values[i]}}, int64_t(i));
    csv.log_metrics({{"v", std::numeric_limits<double>::infinity()}}, 10);
    csv.log_metrics({{"v", std::numeric_limits<double>::quiet_NaN()}}, 11);
  }
  EXPECT_EQ(
      slurp(path),
      "step,v\n0,3.0\n1,0.0001\n2,1e-05\n3,1.5e+16\n4,1e+16\n5,123.456\n6,-0.0\n7,0.1\n8,2.5e-07\n"
      "9,1000000000000000.0\n10,inf\n11,nan\n");
}

TEST_F(CsvLoggerFiles, NamesWithCommasOrQuotesAreQuotedAndReadBack) {
  const std::string path = (dir_ / "m.csv").string();
  {
    CSVLogger csv(path);
    csv.log_metrics({{"acc@1,5", 0.5}, {"say \"hi\"", 2.0}}, 0);
  }
  EXPECT_EQ(slurp(path), "\"acc@1,5\",\"say \"\"hi\"\"\",step\n0.5,2.0,0\n");
  {
    CSVLogger again(path, /*append=*/true);
    again.log_metrics({{"acc@1,5", 0.75}}, 1);
  }
  EXPECT_EQ(slurp(path), "\"acc@1,5\",\"say \"\"hi\"\"\",step\n0.5,2.0,0\n0.75,,1\n");
}

// A line break in a name would split the header over two lines, which the logger cannot read back
// when the columns next change: refused before anything is written.
TEST_F(CsvLoggerFiles, NamesWithLineBreaksAreRefused) {
  const std::string path = (dir_ / "m.csv").string();
  CSVLogger csv(path);
  for (const char* name : {"a\nb", "a\rb"})
    EXPECT_CONTAINS(thrown<ValueError>([&] {
                      csv.log_metrics({{name, 1.0}}, 0);
                    }),
                    "holds a line break");
  csv.log_metrics({{"c", 2.0}}, 1);
  csv.flush();
  EXPECT_EQ(slurp(path), "c,step\n2.0,1\n");
}

// RLIMIT_FSIZE as a full disk: the write fails (SIGXFSZ ignored, so it is an error, not a kill).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    previous_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_);
  }

 private:
  rlimit saved_{};
  void (*previous_)(int) = nullptr;
};

TEST_F(CsvLoggerFiles, AWriteThatFailsLeavesTheEarlierFileAsItWas) {
  const std::string path = (dir_ / "m.csv").string();
  CSVLogger csv(path, /*append=*/false, /*flush_logs_every_n_steps=*/1000);
  for (int i = 0; i < 200; ++i) csv.log_metrics({{"loss", 1.0 / (i + 1)}}, i);
  csv.flush();
  const std::string before = slurp(path);
  {
    FileSizeLimit limit(before.size() + 40);
    for (int i = 200; i < 300; ++i) csv.log_metrics({{"loss", 0.5}}, i);
    // Appended rows: cut back off, no half row left.
    EXPECT_CONTAINS(thrown<IOError>([&] { csv.flush(); }), "its earlier rows are kept");
    EXPECT_EQ(slurp(path), before);
    // A new column rewrites the whole file: the rewrite fails, the file stays.
    csv.log_metrics({{"lr", 0.1}}, 300);
    EXPECT_CONTAINS(thrown<IOError>([&] { csv.flush(); }), "the file is left as it was");
    EXPECT_EQ(slurp(path), before);
    EXPECT_FALSE(fs::exists(path + ".tmp"));
  }
  csv.flush();  // room again: every row logged is written
  const std::string after = slurp(path);
  EXPECT_EQ(after.substr(0, 9), "loss,lr,s");
  EXPECT_NE(after.find("\n,0.1,300\n"), std::string::npos) << after.substr(after.size() - 60);
}

TEST_F(CsvLoggerFiles, APathOfAnotherKindIsAnIOErrorAndALinkIsWrittenThrough) {
  fs::create_directories(dir_ / "folder.csv");
  CSVLogger into_folder((dir_ / "folder.csv").string());  // each row written as logged
  EXPECT_CONTAINS(thrown<IOError>([&] {
                    into_folder.log_metrics({{"x", 1.0}}, 0);
                  }),
                  "is not a regular file");
  std::ofstream(dir_ / "a_file") << "x";
  EXPECT_CONTAINS(thrown<IOError>([&] { CSVLogger under_file((dir_ / "a_file/m.csv").string()); }),
                  "cannot create the folder");
  CSVLogger layout({.root_dir = (dir_ / "a_file").string(), .flush_logs_every_n_steps = 1});
  EXPECT_THROW(layout.log_metrics({{"x", 1.0}}, 0), IOError);
  // A metrics.csv that links elsewhere: the rows go to the link's target, the link stays.
  fs::create_symlink(dir_ / "target.csv", dir_ / "link.csv");
  {
    CSVLogger linked((dir_ / "link.csv").string());
    linked.log_metrics({{"x", 1.0}}, 0);
  }
  EXPECT_TRUE(fs::is_symlink(dir_ / "link.csv"));
  EXPECT_EQ(slurp(dir_ / "target.csv"), "step,x\n0,1.0\n");
}

}  // namespace
}  // namespace fabric
