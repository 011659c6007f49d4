// The progress line's ETA for a run of 2^63 steps (max_epochs past int64's steps: no epoch limit)
// is past any int: it printed a negative one (an undefined double-to-int conversion).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <sstream>
#include <thread>

#include "runtime/progress.h"

namespace fabric {
namespace {

TEST(ProgressEta, AnEndlessRunPrintsANonNegativeEta) {
  std::ostringstream out;
  Progress p(out, 0, std::numeric_limits<int64_t>::max(), 1, /*interactive=*/false, "tokens");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  p.update(1, 0, 1.0, 0.1, 10);
  const std::string line = out.str();
  ASSERT_NE(line.find("step 1/9223372036854775807"), std::string::npos) << line;
  const size_t eta = line.find("ETA ");
  ASSERT_NE(eta, std::string::npos) << line;
  EXPECT_NE(line[eta + 4], '-') << line;
  EXPECT_EQ(line.find("m-"), std::string::npos) << line;
}

TEST(ProgressEta, AnOrdinaryEtaIsMinutesAndSeconds) {
  std::ostringstream out;
  Progress p(out, 0, 3, 1, /*interactive=*/false, "tokens");
  p.update(3, 0, 1.0, 0.1, 10);
  EXPECT_NE(out.str().find("ETA 0m00s"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace fabric
