// The host side of CUDA's deferred range checks, without a device: the error text a failed record
// becomes (the op's own text, the value or count it names, where it came from, what it raises as),
// and the bookkeeping of armed checks (when a synchronisation must read the record, which texts it
// may drop).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/cuda/deferred_check_logic.h"
#include "tests/common/expect_error.h"

namespace fabric::cuda {
namespace {

const RangeErrorText kEmbedding = {
    "embedding: index ",
    " is out of range for an embedding table of 5 rows (weight [5, 3] float32, indices [4] int64) "
    "(valid: 0 to 4)"};

const RangeErrorText kBceInput = {
    "binary_cross_entropy: all elements of input should be between 0 and 1; ",
    " of 8 in the input of shape [2, 4] are not", RangeErrorText::Kind::value_count};

DeferredCheckRecord failed(uint64_t site, long long lowest, long long highest,
                           unsigned long long position, long long bound,
                           unsigned long long count = 1) {
  return {site, lowest, highest, position, bound, count};
}

// A value check (failures counted, no value to name): as the kernel leaves it.
DeferredCheckRecord failed_values(uint64_t site, unsigned long long position,
                                  unsigned long long count) {
  DeferredCheckRecord r = kNoFailure;
  r.site = site;
  r.position = position;
  r.count = count;
  return r;
}

// The value named is the one the op's own check (by the indices' min and max) names: the most
// negative if any, else the largest; the text is the op's, then where it came from.
TEST(DeferredCheckLogic, MessageIsTheOpsTextAroundTheValueItsHostCheckNames) {
  struct Case {
    const char* what;
    DeferredCheckRecord record;
    const char* value;
  };
  const std::vector<Case> cases = {
      {"one too large", failed(1, 7, 7, 2, 5), "7"},
      {"several too large: the largest", failed(1, 5, 9, 0, 5), "9"},
      {"one negative", failed(1, -1, -1, 3, 5), "-1"},
      {"negative and too large: the most negative", failed(1, -8, 12, 1, 5), "-8"},
      {"int64 extremes", failed(1, LLONG_MIN, LLONG_MAX, 0, 5), "-9223372036854775808"},
  };
  for (const Case& c : cases) {
    const std::string msg = deferred_check_message(c.record, &kEmbedding);
    const std::string op_text = kEmbedding.head + c.value + kEmbedding.tail;
    EXPECT_EQ(msg.substr(0, op_text.size()), op_text) << c.what;
    EXPECT_CONTAINS(msg, "Raised by an earlier CUDA op (element " +
                             std::to_string(c.record.position) + " of its indices)");
    EXPECT_CONTAINS(msg, "reported at this synchronisation");
  }
}

TEST(DeferredCheckLogic, AForgottenCheckStillNamesTheValueAndBound) {
  const std::string msg = deferred_check_message(failed(9, 12, 12, 4, 10), nullptr);
  EXPECT_CONTAINS(msg, "index 12 is out of range (valid: 0 to 9");
  EXPECT_CONTAINS(msg, "element 4 of its indices");
}

// A value check (binary_cross_entropy's input in [0, 1]) reads as the CPU's ValueError: the op's
// text around how many elements failed, then the lowest failing position.
TEST(DeferredCheckLogic, AValueCheckNamesTheCountOfFailuresAndTheirFirstPosition) {
  const std::string msg = deferred_check_message(failed_values(1, 3, 5), &kBceInput);
  const std::string op_text = kBceInput.head + "5" + kBceInput.tail;
  EXPECT_EQ(msg.substr(0, op_text.size()), op_text);
  EXPECT_CONTAINS(msg, "Raised by an earlier CUDA op (first at element 3 of its input)");
  EXPECT_CONTAINS(msg, "reported at this synchronisation");
  EXPECT_EQ(msg.find("indices"), std::string::npos) << msg;
}

// The read says what to raise: ValueError for a value check, IndexError for an index check and
// for a check whose text was dropped (nothing left says it was a value check).
TEST(DeferredCheckLogic, AReadReportsTheKindOfTheCheckThatFailed) {
  DeferredCheckSites sites;
  const uint64_t index_check = sites.arm(kEmbedding);
  const uint64_t value_check = sites.arm(kBceInput);
  RangeErrorText::Kind kind = RangeErrorText::Kind::index;
  DeferredCheckSites::Read read = sites.begin_read();
  std::optional<std::string> msg = sites.finish_read(read, failed_values(value_check, 0, 2), &kind);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(kind, RangeErrorText::Kind::value_count);
  EXPECT_CONTAINS(*msg, "between 0 and 1; 2 of 8");

  const uint64_t again = sites.arm(kEmbedding);
  read = sites.begin_read();
  msg = sites.finish_read(read, failed(again, 7, 7, 0, 5), &kind);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(kind, RangeErrorText::Kind::index);
  EXPECT_CONTAINS(*msg, "embedding: index 7");
  EXPECT_NE(index_check, again);

  // Two reads have finished since the value check was armed: its text is gone.
  read = sites.begin_read();
  kind = RangeErrorText::Kind::value_count;
  msg = sites.finish_read(read, failed_values(value_check, 0, 2), &kind);
  ASSERT_TRUE(msg.has_value()) << "a failure under a dropped text still raises";
  EXPECT_EQ(kind, RangeErrorText::Kind::index);
}

// A synchronisation reads the record only when a check may have failed since the last read; a
// failure comes back as the text of the check that failed first.
TEST(DeferredCheckLogic, ReadsAreNeededOnlyAfterArmingAndNameTheFailedCheck) {
  DeferredCheckSites sites;
  EXPECT_FALSE(sites.begin_read().needed) << "nothing armed: no read";
  const uint64_t a = sites.arm(kEmbedding);
  const uint64_t b = sites.arm({"gather: index ", " is out of range for dim 1 of size 4"});
  EXPECT_EQ(a, 1u);
  EXPECT_EQ(b, 2u);

  struct Step {
    const char* what;
    bool arm_before;
    DeferredCheckRecord record;  // what the device record holds at this read
    bool needed;
    std::string error;  // the op text it starts with; empty: no error
  };
  const std::vector<Step> steps = {
      {"after arming: read, gather failed first", false, failed(b, 4, 4, 0, 4), true,
       "gather: index 4 is out of range for dim 1 of size 4"},
      {"record cleared: nothing, one more read covers racing launches", false, kNoFailure, true,
       ""},
      {"two reads since the last arm: skipped", false, kNoFailure, false, ""},
      {"armed again: read", true, failed(3, 5, 5, 1, 5), true,
       "embedding: index 5 is out of range for an embedding table of 5 rows"},
  };
  for (const Step& s : steps) {
    if (s.arm_before) {
      EXPECT_EQ(sites.arm(kEmbedding), 3u);
    }
    const DeferredCheckSites::Read read = sites.begin_read();
    EXPECT_EQ(read.needed, s.needed) << s.what;
    if (!read.needed) continue;
    const std::optional<std::string> msg = sites.finish_read(read, s.record);
    if (s.error.empty()) {
      EXPECT_FALSE(msg.has_value()) << s.what << ": " << msg.value_or("");
    } else {
      ASSERT_TRUE(msg.has_value()) << s.what;
      EXPECT_EQ(msg->substr(0, s.error.size()), s.error) << s.what;
    }
  }
}

// A thread may arm a check, then launch its kernel only after another thread queued its read:
// that read cannot see the failure, so the text must survive until the read after it.
TEST(DeferredCheckLogic, ATextOutlivesTheReadQueuedBeforeItsKernel) {
  DeferredCheckSites sites;
  const uint64_t id = sites.arm(kEmbedding);
  const DeferredCheckSites::Read first = sites.begin_read();  // queued before the launch
  EXPECT_FALSE(sites.finish_read(first, kNoFailure).has_value());
  const DeferredCheckSites::Read second = sites.begin_read();
  ASSERT_TRUE(second.needed);
  const std::optional<std::string> msg = sites.finish_read(second, failed(id, 6, 6, 0, 5));
  ASSERT_TRUE(msg.has_value());
  EXPECT_CONTAINS(*msg, "embedding: index 6 is out of range for an embedding table");
  EXPECT_EQ(sites.texts(), 0u) << "both reads done: the text is dropped";
}

// A program that never synchronises keeps at most kMaxTexts texts; the oldest go first.
TEST(DeferredCheckLogic, TextsAreBoundedWithoutSynchronisation) {
  DeferredCheckSites sites;
  const size_t n = DeferredCheckSites::kMaxTexts + 10;
  for (size_t i = 0; i < n; ++i) sites.arm(kEmbedding);
  EXPECT_EQ(sites.texts(), DeferredCheckSites::kMaxTexts);
  const DeferredCheckSites::Read read = sites.begin_read();
  const std::optional<std::string> oldest = sites.finish_read(read, failed(1, 8, 8, 0, 5));
  ASSERT_TRUE(oldest.has_value());
  EXPECT_CONTAINS(*oldest, "index 8 is out of range (valid: 0 to 4");
}

}  // namespace
}  // namespace fabric::cuda
