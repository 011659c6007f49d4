// CSVLogger appending to an existing metrics.csv (a resumed run): a file it did not write (a step
// that is not an integer, a row with another number of cells than the header) is an IOError
// naming the file and line; CRLF line ends are read as LF.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/loggers.h"
#include "tensor/error.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

class CsvLoggerResume : public testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() /
             ("fabric_csv_resume_" + std::to_string(::getpid()) + "_" +
              testing::UnitTest::GetInstance()->current_test_info()->name() + ".csv"))
                .string();
  }
  void TearDown() override { fs::remove(path_); }
  std::vector<std::string> lines() const {
    std::ifstream in(path_);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  std::string path_;
};

TEST_F(CsvLoggerResume, MalformedFileIsAnIOErrorNamingTheLine) {
  struct Case {
    const char* text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"loss,step\n1.5,0\n2.5,abc\n", "line 3: step 'abc' is not an integer"},
      {"loss,step\n1.5,0\n\n2.5,3x\n",
       "line 4: step '3x' is not an integer"},  // an empty line still counts
      {"loss,step\n1.5,\n", "line 2: step '' is not an integer"},
      {"loss,step\n1.5,0\n2.5\n", "line 3: 1 cells but the header has 2 columns"},
      {"loss,step\n1.5,0,7\n", "line 2: 3 cells but the header has 2 columns"},
  };
  for (const Case& c : cases) {
    std::ofstream(path_) << c.text;
    const std::string msg = thrown<IOError>([&] { CSVLogger csv(path_, /*append=*/true); });
    EXPECT_CONTAINS(msg, "CSVLogger: " + path_ + " " + c.message);
    EXPECT_EQ(lines().size(), size_t(std::count(c.text, c.text + std::strlen(c.text), '\n')))
        << "file changed";
  }
}

// A last line without its newline that does not read as a row was cut off mid-write (a kill, a
// full disk): dropped, and the next flush rewrites the file whole (an append would continue the cut
// line). A whole last row without its newline is kept.
TEST_F(CsvLoggerResume, ARowCutOffMidWriteIsDropped) {
  for (const char* torn : {"2.5", "2.5,", "2.5,1", "2.5,1,0.0052"}) {
    std::ofstream(path_) << "loss,step\n1.5,0\n"
                         << (std::string(torn) == "2.5,1" ? "2.5,1x" : torn);
    {
      CSVLogger csv(path_, /*append=*/true);
      csv.log_metrics({{"loss", 4.5}}, 1);
    }
    EXPECT_EQ(lines(), (std::vector<std::string>{"loss,step", "1.5,0", "4.5,1"})) << torn;
  }
  std::ofstream(path_) << "loss,step\n1.5,0\n2.5,1";
  {
    CSVLogger csv(path_, /*append=*/true);
    csv.log_metrics({{"loss", 4.5}}, 2);
  }
  EXPECT_EQ(lines(), (std::vector<std::string>{"loss,step", "1.5,0", "2.5,1", "4.5,2"}));
}

TEST_F(CsvLoggerResume, CrlfLinesAreReadAndRowsAfterAStepDropped) {
  std::ofstream(path_) << "loss,step\r\n1.5,0\r\n2.5,1\r\n3.5,2\r\n";
  {
    CSVLogger csv(path_, /*append=*/true);
    csv.truncate_after(1);
    csv.log_metrics({{"loss", 4.5}}, 2);
  }
  EXPECT_EQ(lines(), (std::vector<std::string>{"loss,step", "1.5,0", "2.5,1", "4.5,2"}));
}

// Rows already written are not kept in memory (a long run's metrics would grow without bound): a
// new column rewrites the file from what it holds, read back, and the default step keeps counting.
TEST_F(CsvLoggerResume, RowsWrittenAreReadBackFromTheFileForANewColumn) {
  {
    CSVLogger csv(path_);
    csv.log_metrics({{"loss", 1.5}}, std::nullopt);
    csv.log_metrics({{"loss", 2.5}}, std::nullopt);
    // Edited behind the logger's back: what a rewrite keeps is the file's row, not a copy.
    std::ofstream(path_) << "loss,step\n1.25,0\n2.5,1\n";
    csv.log_metrics({{"loss", 3.5}, {"acc", 0.5}}, std::nullopt);
    csv.truncate_after(1);
    csv.log_metrics({{"acc", 0.75}}, std::nullopt);
  }
  EXPECT_EQ(lines(), (std::vector<std::string>{"acc,loss,step", ",1.25,0", ",2.5,1", "0.75,,3"}));
}

}  // namespace
}  // namespace fabric
