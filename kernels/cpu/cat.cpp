// CPU cat of contiguous pieces row by row (cat_kernels.h): each output row is written front to
// back from the pieces' rows, rows split among the threads in contiguous blocks.
#include <omp.h>

#include <cstring>

#include "kernels/cpu/run_tasks.h"
#include "tensor/cat_kernels.h"

namespace fabric::cpu {
namespace {

// Below this many output bytes one thread does it all (the copies' grain: ~32K floats).
constexpr int64_t kParallelBytes = int64_t{128} << 10;

void cat_rows(const CatRowsDesc& d) {
  char* out = static_cast<char*>(d.out);
  const bool parallel = d.outer * d.out_row_bytes >= kParallelBytes;
  run_tasks(d.outer, parallel, [&](int64_t r) {
    char* dst = out + r * d.out_row_bytes;
    for (int64_t p = 0; p < d.num_pieces; ++p) {
      const int64_t n = d.piece_row_bytes[p];
      std::memcpy(dst, static_cast<const char*>(d.pieces[p]) + r * n, static_cast<size_t>(n));
      dst += n;
    }
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(cat_rows_stub, cpu, &cpu::cat_rows);
}  // namespace fabric
