// fabric-train sample prints as it generates: the prompt at once, then each character as it is
// drawn, so that a huge --tokens shows text straight away (it used to print nothing until every
// token was generated, keeping them all in one growing tensor). The bytes are those of a shorter
// run with the same seed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
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

// sample and export read the model, config and vocabulary: a checkpoint copied without its
// optimizer.safetensors (the largest file, useless for inference) still samples, the same bytes.
TEST_F(FabricTrainSampleStream, NeedsNoOptimizerFile) {
  const std::string run_dir = (dir_ / "run").string();
  const Result before = run("sample " + run_dir + " --prompt 'the cat' --tokens 40 --seed 5");
  ASSERT_EQ(before.status, 0) << before.output;
  int removed = 0;
  for (const auto& step : std::filesystem::directory_iterator(run_dir + "/checkpoints"))
    removed += std::filesystem::remove(step.path() / "optimizer.safetensors") ? 1 : 0;
  ASSERT_GT(removed, 0);
  const Result after = run("sample " + run_dir + " --prompt 'the cat' --tokens 40 --seed 5");
  ASSERT_EQ(after.status, 0) << after.output;
  EXPECT_EQ(after.output, before.output);
  const Result exported = run("export " + run_dir + " " + (dir_ / "model.safetensors").string());
  EXPECT_EQ(exported.status, 0) << exported.output;
}

// Another file of a checkpoint (its state.json) is named as such, with the directory to pass.
TEST_F(FabricTrainSampleStream, AnotherFileOfACheckpointNamesTheDirectoryToPass) {
  const std::string last = (dir_ / "run" / "checkpoints" / "last").string();
  const Result r = run("sample " + last + "/state.json --tokens 3");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(last + "/state.json is a file of the checkpoint " + last +
                          ", not its model.safetensors; pass the checkpoint directory " + last),
            std::string::npos)
      << r.output;
}

// A prompt that is not UTF-8 is named as such, at its byte (a Latin-1 'é', a cut sequence whose
// next valid character was swallowed into the "character"); control characters are listed by
// code point, not printed raw (a CR moved the terminal's cursor).
TEST_F(FabricTrainSampleStream, PromptsThatAreNotUtf8OrHoldControlCharactersAreNamed) {
  const std::string run_dir = (dir_ / "run").string();
  const Result latin1 = run("sample " + run_dir + " --prompt \"$(printf 'caf\\351')\" --tokens 3");
  EXPECT_EQ(latin1.status, 2) << latin1.output;
  EXPECT_NE(latin1.output.find("sample --prompt: invalid UTF-8 at byte 3 (0xE9)"),
            std::string::npos)
      << latin1.output;
  const Result cut = run("sample " + run_dir + " --prompt \"$(printf 'ca\\303at')\" --tokens 3");
  EXPECT_EQ(cut.status, 2) << cut.output;
  EXPECT_NE(cut.output.find("invalid UTF-8 at byte 2 (0xC3)"), std::string::npos) << cut.output;
  const Result control =
      run("sample " + run_dir + " --prompt \"$(printf 'a\\tb\\rc')\" --tokens 3");
  EXPECT_EQ(control.status, 2) << control.output;
  EXPECT_NE(
      control.output.find("3 characters are not in the model's vocabulary: U+0009, 'b', U+000D"),
      std::string::npos)
      << control.output;
}

// resume takes the checkpoint's vocabulary: a vocab.json edited since (a character added, which
// shifted every id after it) is said and rewritten from the checkpoint's.
TEST_F(FabricTrainSampleStream, ResumeTakesTheCheckpointsVocabularyOverAnEditedVocabJson) {
  const std::string run_dir = (dir_ / "run").string();
  std::ifstream in(run_dir + "/vocab.json");
  const std::string original((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  ASSERT_NE(original.find("\" \""), std::string::npos) << original;  // the space, first after none
  std::string edited = original;
  edited.replace(edited.find("\" \""), 3, "\" \", \"!\"");
  std::ofstream(run_dir + "/vocab.json") << edited;
  const Result resumed = run("resume " + run_dir + " --set trainer.max_steps=3");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("vocab.json differs from the vocabulary the checkpoint holds"),
            std::string::npos)
      << resumed.output;
  std::ifstream again(run_dir + "/vocab.json");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>()),
            original);
}

}  // namespace
}  // namespace fabric
