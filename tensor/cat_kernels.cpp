// cat's direct kernel's stub and its op-layer entry (cat_kernels.h).
#include "tensor/cat_kernels.h"

namespace fabric {

FABRIC_DEFINE_STUB(cat_rows_stub, CatRowsFn);

bool cat_rows_direct(const std::vector<Tensor>& pieces, const std::vector<int64_t>& sizes_along_dim,
                     int64_t dim, const Tensor& out) {
  const CatRowsFn kernel = cat_rows_stub.find(out.device());
  if (!kernel || !out.is_contiguous() || out.numel() == 0) return false;
  int64_t outer = 1;
  for (int64_t k = 0; k < dim; ++k) outer *= out.size(k);
  if (outer < 2) return false;
  const int64_t inner_bytes = out.numel() / (outer * out.size(dim)) * out.element_size();
  std::vector<const void*> src;
  std::vector<int64_t> row_bytes;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (sizes_along_dim[i] == 0) continue;  // nothing along dim (or a skipped legacy-empty piece)
    const Tensor& p = pieces[i];
    if (p.dtype() != out.dtype() || p.device() != out.device() || !p.is_contiguous() ||
        p.numel() != outer * sizes_along_dim[i] * (inner_bytes / out.element_size()))
      return false;
    src.push_back(p.data_ptr());
    row_bytes.push_back(sizes_along_dim[i] * inner_bytes);
  }
  CatRowsDesc d;
  d.out = out.data_ptr();
  d.outer = outer;
  d.out_row_bytes = out.size(dim) * inner_bytes;
  d.pieces = src.data();
  d.piece_row_bytes = row_bytes.data();
  d.num_pieces = static_cast<int64_t>(src.size());
  kernel(d);
  return true;
}

}  // namespace fabric
