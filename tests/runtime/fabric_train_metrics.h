// metrics.csv as the fabric-train tests read it: its lines, a row's cells by column name, and the
// comparisons of two runs by their losses (shared by test_fabric_train*.cpp).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/runtime/fabric_train_test_util.h"

namespace fabric::train_test {

// A file's lines, without their newlines (none when it cannot be read).
inline std::vector<std::string> lines(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

inline std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> out(1);
  for (char c : line) {
    if (c == ',') {
      out.emplace_back();
    } else {
      out.back().push_back(c);
    }
  }
  return out;
}

// The cell of column `name` in line `row` of a metrics.csv read by lines() (line 0: the header,
// whose sorted order puts lr before step and train_loss).
inline std::string cell(const std::vector<std::string>& csv, size_t row, const std::string& name) {
  const auto header = split_cells(csv.at(0));
  const auto at = std::find(header.begin(), header.end(), name);
  EXPECT_NE(at, header.end()) << "no column " << name << " in " << csv.at(0);
  if (at == header.end()) return "";
  return split_cells(csv.at(row)).at(size_t(at - header.begin()));
}

// The cells of column `name` in a metrics.csv, one per row (empty where the row has none).
inline std::vector<std::string> column(const std::filesystem::path& csv, const std::string& name) {
  const auto rows = lines(csv);
  std::vector<std::string> out;
  if (rows.empty()) return out;
  const auto header = split_cells(rows[0]);
  const auto at = std::find(header.begin(), header.end(), name);
  EXPECT_NE(at, header.end()) << "no column " << name << " in " << rows[0];
  if (at == header.end()) return out;
  for (size_t r = 1; r < rows.size(); ++r)
    out.push_back(split_cells(rows[r]).at(size_t(at - header.begin())));
  return out;
}

inline double train_loss(const std::vector<std::string>& csv, size_t row) {
  return std::stod(cell(csv, row, "train_loss"));
}

// The train_loss column of a metrics.csv whose rows all have one (no validation rows).
inline std::vector<double> train_losses(const std::filesystem::path& csv) {
  std::vector<double> out;
  for (const auto& c : column(csv, "train_loss")) out.push_back(std::stod(c));
  return out;
}

// Two runs' metrics.csv (a header and `steps` rows): the same losses, step by step, within `rel`.
inline void expect_same_losses(const std::string& a_csv, const std::string& b_csv, size_t steps,
                               double rel) {
  const auto la = lines(a_csv), lb = lines(b_csv);
  ASSERT_EQ(la.size(), steps + 1) << a_csv;
  ASSERT_EQ(lb.size(), steps + 1) << b_csv;
  for (size_t i = 1; i < la.size(); ++i) {
    const double x = train_loss(la, i), y = train_loss(lb, i);
    EXPECT_NEAR(x, y, rel * std::abs(x)) << "step " << i;
  }
}

// A finished run restarted from its step-`step` checkpoint (copied over last/) writes exactly the
// metrics of the uninterrupted run.
inline void expect_resume_reproduces(const std::string& run_dir, int step) {
  namespace fs = std::filesystem;
  const auto full = lines(run_dir + "/metrics.csv");
  fs::remove_all(run_dir + "/checkpoints/last");
  fs::copy(run_dir + "/checkpoints/step-" + std::to_string(step), run_dir + "/checkpoints/last",
           fs::copy_options::recursive);
  const Result res = run("resume " + run_dir);
  ASSERT_EQ(res.status, 0) << res.output;
  EXPECT_EQ(lines(run_dir + "/metrics.csv"), full);
}

}  // namespace fabric::train_test
