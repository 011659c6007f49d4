// CopySlices and AsStridedBackward0 (see view_nodes.h). Both find a view's elements in a gradient
// laid out as the base: the view's strides are the base's storage strides, so the same geometry
// applies to any tensor with the base's sizes and strides.
#include "autograd/view_nodes.h"

#include <algorithm>
#include <unordered_map>

#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

ViewGeometry geometry_of(const Tensor& t) { return {t.sizes(), t.strides(), t.storage_offset()}; }

bool same_edge(const Edge& a, const Edge& b) { return a.fn == b.fn && a.input_nr == b.input_nr; }

// A new tensor with the base's sizes and strides (at offset 0 of its own storage).
Tensor new_in_layout(const ViewGeometry& base, DType dtype, Device device, bool zeroed) {
  int64_t span = 1;
  for (size_t d = 0; d < base.sizes.size(); ++d) {
    if (base.sizes[d] == 0) span = 0;
    if (span > 0) span += (base.sizes[d] - 1) * base.strides[d];
  }
  const TensorOptions opts{.dtype = dtype, .device = device};
  const Tensor buffer = zeroed ? zeros({span}, opts) : empty({span}, opts);
  return Tensor::from_storage(buffer.storage(), dtype, base.sizes, base.strides, 0);
}

// The view's elements inside `laid_out`, a tensor with the base's sizes and strides.
Tensor elements_of(const Tensor& laid_out, const ViewGeometry& base, const ViewGeometry& view) {
  return Tensor::from_storage(laid_out.storage(), laid_out.dtype(), view.sizes, view.strides,
                              laid_out.storage_offset() + view.offset - base.offset);
}

// part := g, where an element that `part` repeats (stride 0, an expanded view) gets the sum of g
// over its repeats: every repeat is the same element of the base.
void write_elements(Tensor part, Tensor g) {
  std::vector<int64_t> repeated;
  Shape once = part.sizes();
  for (int64_t d = 0; d < part.dim(); ++d) {
    if (part.sizes()[d] > 1 && part.strides()[d] == 0) {
      repeated.push_back(d);
      once[d] = 1;
    }
  }
  if (!repeated.empty()) {
    g = sum(g, repeated, /*keepdim=*/true);
    part = Tensor::from_storage(part.storage(), part.dtype(), once, part.strides(),
                                part.storage_offset());
  }
  part.copy_(g);
}

}  // namespace

AsStridedBackward::AsStridedBackward(const Tensor& base, const Tensor& view, Edge base_edge)
    : base_(geometry_of(base)), view_(geometry_of(view)) {
  next_edges = {std::move(base_edge)};
  input_meta = {{base.sizes(), base.dtype(), base.device()}};
}

std::vector<Tensor> AsStridedBackward::apply(std::vector<Tensor>&& grads) {
  if (!grads[0].defined()) return {Tensor()};
  NoGradGuard no_grad;
  Tensor grad_base =
      new_in_layout(base_, input_meta[0].dtype, input_meta[0].device, /*zeroed=*/true);
  write_elements(elements_of(grad_base, base_, view_), grads[0]);
  return {grad_base};
}

CopySlices::CopySlices(const Tensor& base, const Tensor& view, Edge base_edge, const Edge& result,
                       std::vector<std::shared_ptr<Node>> op_nodes, const Edge& view_edge)
    : base_(geometry_of(base)),
      view_(geometry_of(view)),
      op_nodes_(std::move(op_nodes)),
      view_edge_(view_edge) {
  std::sort(op_nodes_.begin(), op_nodes_.end(),
            [](const auto& a, const auto& b) { return a->sequence_nr() > b->sequence_nr(); });
  next_edges = {std::move(base_edge)};
  input_meta = {{base.sizes(), base.dtype(), base.device()}};
  result_route_ = route_to(result, {view.sizes(), view.dtype(), view.device()});
  routes_.resize(op_nodes_.size());
  for (size_t k = 0; k < op_nodes_.size(); ++k) {
    const Node& n = *op_nodes_[k];
    for (size_t i = 0; i < n.next_edges.size(); ++i)
      routes_[k].push_back(route_to(n.next_edges[i], n.input_meta[i]));
  }
}

CopySlices::Route CopySlices::route_to(const Edge& e, const InputMeta& meta) {
  if (!e.valid()) return {};
  for (size_t k = 0; k < op_nodes_.size(); ++k)
    if (op_nodes_[k] == e.fn) return {Route::op_node, k, e.input_nr};
  if (same_edge(e, view_edge_)) return {Route::view};
  // Another input of the op (an operand, or the base itself read whole): one next edge each.
  for (size_t j = 1; j < next_edges.size(); ++j)
    if (same_edge(e, next_edges[j])) return {Route::out, j};
  next_edges.push_back(e);
  input_meta.push_back(meta);
  return {Route::out, next_edges.size() - 1};
}

Tensor CopySlices::run_op(Tensor result_grad, std::vector<Tensor>& out) {
  std::vector<std::vector<Tensor>> buffers(op_nodes_.size());
  Tensor view_grad;
  auto add_into = [](Tensor& dst, Tensor g) { dst = dst.defined() ? add(dst, g) : std::move(g); };
  auto deliver = [&](const Route& r, Tensor g) {
    if (!g.defined()) return;
    switch (r.kind) {
      case Route::op_node: {
        std::vector<Tensor>& buf = buffers[r.index];
        if (buf.empty()) buf.resize(op_nodes_[r.index]->num_outputs);
        add_into(buf[r.input_nr], std::move(g));
        break;
      }
      case Route::view:
        add_into(view_grad, std::move(g));
        break;
      case Route::out:
        add_into(out[r.index], std::move(g));
        break;
      case Route::none:
        break;
    }
  };
  deliver(result_route_, std::move(result_grad));
  for (size_t k = 0; k < op_nodes_.size(); ++k) {
    std::vector<Tensor>& buf = buffers[k];
    if (std::none_of(buf.begin(), buf.end(), [](const Tensor& g) { return g.defined(); })) continue;
    Node& n = *op_nodes_[k];
    std::vector<Tensor> got = n.apply(std::move(buf));
    FABRIC_CHECK(got.size() == n.next_edges.size(), Error, "backward: ", n.name(), " returned ",
                 got.size(), " gradients for ", n.next_edges.size(), " inputs");
    for (size_t i = 0; i < got.size(); ++i)
      deliver(routes_[k][i], conform_gradient(std::move(got[i]), n.input_meta[i], n, i));
  }
  return view_grad;
}

std::vector<Tensor> CopySlices::apply(std::vector<Tensor>&& grads) {
  std::vector<Tensor> out(next_edges.size());
  const Tensor& grad = grads[0];
  if (!grad.defined()) return out;
  NoGradGuard no_grad;
  const DType dtype = input_meta[0].dtype;
  const Device device = input_meta[0].device;
  // The base's gradient laid out as the base. It is written below when the base's previous
  // history wants a gradient; otherwise one already laid out that way is only read.
  const bool to_base = next_edges[0].valid();
  Tensor laid_out = grad;
  if (to_base || grad.strides() != base_.strides) {
    laid_out = new_in_layout(base_, dtype, device, /*zeroed=*/false);
    laid_out.copy_(grad);
  }
  Tensor part = elements_of(laid_out, base_, view_);
  // A copy: the op's rules may keep their gradient, and `part` is overwritten next.
  const Tensor view_grad = run_op(part.clone(), out);
  if (to_base) {
    if (view_grad.defined()) {
      write_elements(part, view_grad);
    } else {
      part.fill_(0);
    }
    out[0] = laid_out;
  }
  return out;
}

void CopySlices::release_saved() {
  for (const auto& n : op_nodes_) n->release_saved();
}

}  // namespace fabric
