// Every nn module with a torch 1.13 counterpart prints exactly as torch prints it: the table of
// tests/nn/repr_torch_rows.h (tools/fixtures/make_repr_rows.py) pairs a C++ expression with torch's
// repr of its Python twin, a couple of configurations per module, containers and a Transformer
// nest among them.
#include <gtest/gtest.h>

#include "tests/nn/repr_torch_rows.h"

namespace fabric::nn {
namespace {

TEST(ReprTorch, EveryModulePrintsAsTorch) {
  for (const repr_rows::ReprRow& row : repr_rows::rows()) {
    try {
      EXPECT_EQ(row.make()->str(), row.torch) << row.cpp;
    } catch (const Error& e) {
      ADD_FAILURE() << row.cpp << " threw: " << e.what();
    }
  }
}

}  // namespace
}  // namespace fabric::nn
