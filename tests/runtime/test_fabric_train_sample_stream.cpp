// fabric-train sample prints as it generates: the prompt at once, then each character as it is
// drawn, so that a huge --tokens shows text straight away (it used to print nothing until every
// token was generated, keeping them all in one growing tensor). The bytes are those of a shorter
// run with the same seed.
#include <gtest/gtest.h>

#include <string>

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
using namespace train_test;

class FabricTrainSampleStream : public RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_sample_stream");
    if (IsSkipped()) return;
    const Result fit = run("fit " + write_tiny_gpt_config("run"));
    ASSERT_EQ(fit.status, 0) << fit.output;
  }
};

TEST_F(FabricTrainSampleStream, HugeTokenCountPrintsAtOnce) {
  const std::string run_dir = (dir_ / "run").string();
  const Result whole = run("sample " + run_dir + " --prompt 'the cat' --tokens 400 --seed 5");
  ASSERT_EQ(whole.status, 0) << whole.output;
  ASSERT_EQ(whole.output.size(), 7u + 400u + 1u) << whole.output;
  // 10^12 tokens: `head` takes the first 200 bytes and closes the pipe, which ends fabric-train
  // (SIGPIPE). Without streaming nothing comes before the timeout kills it.
  const Result first =
      run("sample " + run_dir +
              " --prompt 'the cat' --tokens 1000000000000 --seed 5 2>/dev/null | head -c 200",
          "timeout 60");
  EXPECT_EQ(first.output, whole.output.substr(0, 200));
}

}  // namespace
}  // namespace fabric
