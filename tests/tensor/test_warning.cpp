// fabric::warn: the handler sees every warning with its call site; the default handler prints
// "fabric: warning: <message>" once per call site and message (Python's default filter), and
// nothing with FABRIC_WARNINGS=off.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "tensor/warning.h"
#include "tests/common/capture_warnings.h"

namespace fabric {
namespace {

// The stderr of fn, with FABRIC_WARNINGS set to `env` (unset: nullopt) meanwhile.
std::string stderr_of(const std::function<void()>& fn, std::optional<std::string> env) {
  const char* old = std::getenv("FABRIC_WARNINGS");
  const std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  if (env) {
    setenv("FABRIC_WARNINGS", env->c_str(), 1);
  } else {
    unsetenv("FABRIC_WARNINGS");
  }
  testing::internal::CaptureStderr();
  fn();
  const std::string err = testing::internal::GetCapturedStderr();
  if (saved) {
    setenv("FABRIC_WARNINGS", saved->c_str(), 1);
  } else {
    unsetenv("FABRIC_WARNINGS");
  }
  return err;
}

void warn_from_one_site(const std::string& message) { warn(message); }

TEST(Warning, TheDefaultHandlerPrintsEachSiteAndMessageOnce) {
  // Messages unique to this test: the filter is process-wide.
  const std::string a = "TheDefaultHandler: a", b = "TheDefaultHandler: b";
  struct Row {
    const char* what;
    std::function<void()> calls;
    std::optional<std::string> env;
    std::string printed;
  };
  const std::vector<Row> rows = {
      {"first time", [&] { warn_from_one_site(a); }, std::nullopt, "fabric: warning: " + a + "\n"},
      {"same site and message again", [&] { warn_from_one_site(a); }, std::nullopt, ""},
      {"another message, same site", [&] { warn_from_one_site(b); }, std::nullopt,
       "fabric: warning: " + b + "\n"},
      {"same message, another site", [&] { warn(a); }, std::nullopt,
       "fabric: warning: " + a + "\n"},
      {"a loop warns once",
       [&] {
         for (int i = 0; i < 3; ++i) warn("TheDefaultHandler: loop");
       },
       std::nullopt, "fabric: warning: TheDefaultHandler: loop\n"},
      {"FABRIC_WARNINGS=off", [&] { warn("TheDefaultHandler: silenced"); }, "off", ""},
      {"other values print", [&] { warn("TheDefaultHandler: on"); }, "on",
       "fabric: warning: TheDefaultHandler: on\n"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.what);
    EXPECT_EQ(stderr_of(r.calls, r.env), r.printed);
  }
}

TEST(Warning, AHandlerReceivesEveryWarningWithItsCallSite) {
  std::vector<Warning> got;
  WarningHandler previous = set_warning_handler([&](const Warning& w) { got.push_back(w); });
  const std::string err = stderr_of(
      [] {
        for (int i = 0; i < 2; ++i) warn("AHandler: repeated");  // not filtered
      },
      std::nullopt);
  // The one installed here comes back, and the empty one restores the default.
  EXPECT_TRUE(static_cast<bool>(set_warning_handler(std::move(previous))));
  EXPECT_EQ(err, "");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].message, "AHandler: repeated");
  EXPECT_NE(std::string(got[0].where.file_name()).find("test_warning.cpp"), std::string::npos);
  EXPECT_EQ(got[0].where.line(), got[1].where.line());
}

TEST(Warning, CapturedWarningsRestoresThePreviousHandler) {
  {
    test::CapturedWarnings outer;
    {
      test::CapturedWarnings inner;
      warn("Captured: inner");
      EXPECT_EQ(inner.messages(), std::vector<std::string>{"Captured: inner"});
    }
    warn("Captured: outer");
    EXPECT_EQ(outer.messages(), std::vector<std::string>{"Captured: outer"});
  }
  EXPECT_EQ(stderr_of([] { warn("Captured: default again"); }, std::nullopt),
            "fabric: warning: Captured: default again\n");
}

}  // namespace
}  // namespace fabric
