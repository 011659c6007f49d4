// The op entry points. Each op: applies autocast (its policy is in op_list.h), checks its
// arguments (errors name the op, shapes and dtypes), dispatches to the device's kernel and hands
// the call to autograd (op_record.h). Type promotion follows PyTorch (promotion.h).
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include <tuple>
#include <vector>

#include "tensor/scalar.h"
#include "tensor/tensor.h"

namespace fabric {

class Generator;

// ---- binary elementwise (broadcasting, PyTorch type promotion) -------------------------------
Tensor add(const Tensor& a, const Tensor& b, const Scalar& alpha = 1);  // a + alpha*b
Tensor add(const Tensor& a, const Scalar& b);
Tensor sub(const Tensor& a, const Tensor& b, const Scalar& alpha = 1);  // a - alpha*b
Tensor sub(const Tensor& a, const Scalar& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Scalar& b);
Tensor div(const Tensor& a, const Tensor& b);   // true division: integers promote to float
Tensor div(const Tensor& a, const Scalar& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Scalar& exponent);
Tensor eq(const Tensor& a, const Tensor& b);    // comparisons return bool
Tensor eq(const Tensor& a, const Scalar& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Scalar& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Scalar& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Scalar& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Scalar& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Scalar& b);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& a);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Scalar& b);
Tensor addcmul(const Tensor& self, const Tensor& t1, const Tensor& t2, const Scalar& value = 1);
Tensor addcdiv(const Tensor& self, const Tensor& t1, const Tensor& t2, const Scalar& value = 1);
// torch.atan2 (integers promote to the default float dtype); fmod (C's fmod: the sign of a) and
// remainder (Python's %: the sign of b), integer division by zero raising ValueError;
// logical_xor returns bool.
Tensor atan2(const Tensor& a, const Tensor& b);
Tensor fmod(const Tensor& a, const Tensor& b);
Tensor fmod(const Tensor& a, const Scalar& b);
Tensor remainder(const Tensor& a, const Tensor& b);
Tensor remainder(const Tensor& a, const Scalar& b);
Tensor logical_xor(const Tensor& a, const Tensor& b);

// In-place variants write into `a` (its dtype must hold the result; no broadcasting of `a`).
Tensor& add_(Tensor& a, const Tensor& b, const Scalar& alpha = 1);
Tensor& add_(Tensor& a, const Scalar& b);
Tensor& sub_(Tensor& a, const Tensor& b, const Scalar& alpha = 1);
Tensor& sub_(Tensor& a, const Scalar& b);
Tensor& mul_(Tensor& a, const Tensor& b);
Tensor& mul_(Tensor& a, const Scalar& b);
Tensor& div_(Tensor& a, const Tensor& b);
Tensor& div_(Tensor& a, const Scalar& b);

// ---- unary elementwise (integers promote to float for the transcendental ones) ---------------
Tensor neg(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
// approximate: "none" (erf form) or "tanh", as torch.nn.functional.gelu.
Tensor gelu(const Tensor& a, std::string_view approximate = "none");
Tensor silu(const Tensor& a);
Tensor sin(const Tensor& a);
Tensor cos(const Tensor& a);
Tensor reciprocal(const Tensor& a);
Tensor clamp(const Tensor& a, std::optional<Scalar> min, std::optional<Scalar> max);
// torch.log1p expm1 erf; floor ceil round (half to even) trunc sign: integer inputs as torch
// (floor/ceil/round/trunc/sign keep the dtype, log1p/expm1/erf give the default float dtype).
Tensor log1p(const Tensor& a);
Tensor expm1(const Tensor& a);
Tensor erf(const Tensor& a);
Tensor floor(const Tensor& a);
Tensor ceil(const Tensor& a);
Tensor round(const Tensor& a);
Tensor trunc(const Tensor& a);
Tensor sign(const Tensor& a);
// torch's trigonometric, hyperbolic and logarithm family and erfinv (integers promote to the
// default float dtype, as torch).
Tensor tan(const Tensor& a);
Tensor asin(const Tensor& a);
Tensor acos(const Tensor& a);
Tensor atan(const Tensor& a);
Tensor sinh(const Tensor& a);
Tensor cosh(const Tensor& a);
Tensor asinh(const Tensor& a);
Tensor acosh(const Tensor& a);
Tensor atanh(const Tensor& a);
Tensor log2(const Tensor& a);
Tensor log10(const Tensor& a);
Tensor erfinv(const Tensor& a);
// Bool masks (integers: all false, or true for isfinite), as torch.
Tensor isnan(const Tensor& a);
Tensor isinf(const Tensor& a);
Tensor isfinite(const Tensor& a);
// torch.nan_to_num: NaN -> nan, +inf/-inf -> posinf/neginf (default: the dtype's max/lowest).
Tensor nan_to_num(const Tensor& a, double nan = 0.0, std::optional<double> posinf = std::nullopt,
                  std::optional<double> neginf = std::nullopt);

// ---- parameterised activations, as torch.nn.functional (floating tensors only) --------------
Tensor leaky_relu(const Tensor& a, const Scalar& negative_slope = 0.01);
Tensor elu(const Tensor& a, const Scalar& alpha = 1.0);
Tensor selu(const Tensor& a);
Tensor celu(const Tensor& a, const Scalar& alpha = 1.0);
// beta * x > threshold: x itself (torch's linear region).
Tensor softplus(const Tensor& a, const Scalar& beta = 1.0, const Scalar& threshold = 20.0);
Tensor hardtanh(const Tensor& a, const Scalar& min_val = -1.0, const Scalar& max_val = 1.0);
Tensor relu6(const Tensor& a);  // hardtanh(a, 0, 6)
Tensor mish(const Tensor& a);
Tensor hardswish(const Tensor& a);
Tensor hardsigmoid(const Tensor& a);
// torch.nn.functional.prelu: weight holds 1 or C slopes (C = x's dim 1; a 1-D x is one channel).
Tensor prelu(const Tensor& x, const Tensor& weight);
// torch.nn.functional.glu: a * sigmoid(b) for the two halves a, b of `dim` (even size).
Tensor glu(const Tensor& x, int64_t dim = -1);
Tensor log_sigmoid(const Tensor& a);  // F.logsigmoid: -softplus(-a), stable for large |a|
Tensor hardshrink(const Tensor& a, const Scalar& lambd = 0.5);  // |a| > lambd ? a : 0
Tensor softshrink(const Tensor& a, const Scalar& lambd = 0.5);  // a -/+ lambd outside [-lambd, lambd]
Tensor softsign(const Tensor& a);                               // a / (1 + |a|)
Tensor tanhshrink(const Tensor& a);                             // a - tanh(a)
// torch.nn.functional.threshold: a > thresh ? a : value.
Tensor threshold(const Tensor& a, const Scalar& thresh, const Scalar& value);
// torch.nn.functional.rrelu: while training, each negative element's slope is drawn from
// U(lower, upper); otherwise the slope is (lower + upper) / 2.
Tensor rrelu(const Tensor& a, const Scalar& lower = 1.0 / 8, const Scalar& upper = 1.0 / 3,
             bool training = false, Generator* gen = nullptr);
// torch.nn.functional.normalize: x / max(||x||_p over dim, eps).
Tensor normalize(const Tensor& x, double p = 2.0, int64_t dim = 1, double eps = 1e-12);
// torch.nn.functional.local_response_norm over the channels (dim 1) of a 3-D or wider input.
Tensor local_response_norm(const Tensor& x, int64_t size, double alpha = 1e-4, double beta = 0.75,
                           double k = 1.0);

// ---- reductions (dims empty = all dims; negative dims wrap) ---------------------------------
// sum/mean of bool and integers accumulate in int64 (sum) as PyTorch does; `dtype` overrides.
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false,
           std::optional<DType> dtype = std::nullopt);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false,
            std::optional<DType> dtype = std::nullopt);
// values and int64 indices of the first max/min along dim (NaN propagates, as in PyTorch).
std::tuple<Tensor, Tensor> max(const Tensor& a, int64_t dim, bool keepdim = false);
std::tuple<Tensor, Tensor> min(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& a);  // over all elements
Tensor min(const Tensor& a);
Tensor amax(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor argmax(const Tensor& a, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
// torch.sort / argsort / topk along `dim`: (values, int64 indices). NaN sorts as the largest
// value (torch); `stable` keeps equal elements in input order (sort is always stable here).
std::tuple<Tensor, Tensor> sort(const Tensor& a, int64_t dim = -1, bool descending = false,
                                bool stable = false);
Tensor argsort(const Tensor& a, int64_t dim = -1, bool descending = false);
std::tuple<Tensor, Tensor> topk(const Tensor& a, int64_t k, int64_t dim = -1, bool largest = true,
                                bool sorted = true);
Tensor argmin(const Tensor& a, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
// correction = 1 is Bessel's (torch.var default).
Tensor var(const Tensor& a, const std::vector<int64_t>& dims = {}, double correction = 1,
           bool keepdim = false);
Tensor std(const Tensor& a, const std::vector<int64_t>& dims = {}, double correction = 1,
           bool keepdim = false);
// p-norm (p = 2 default; inf allowed) over dims.
Tensor norm(const Tensor& a, double p = 2, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor cumsum(const Tensor& a, int64_t dim, std::optional<DType> dtype = std::nullopt);
// torch.prod over every element (dim unset) or one dim; bool/integers accumulate in int64.
// The gradient handles zeros as torch does (no division by the product).
Tensor prod(const Tensor& a, std::optional<int64_t> dim = std::nullopt, bool keepdim = false,
            std::optional<DType> dtype = std::nullopt);
Tensor cumprod(const Tensor& a, int64_t dim, std::optional<DType> dtype = std::nullopt);
// torch.all / torch.any (dims empty = all dims): bool results.
Tensor all(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor any(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);

// ---- linear algebra ---------------------------------------------------------------------------
Tensor matmul(const Tensor& a, const Tensor& b);  // torch.matmul's broadcasting rules
Tensor mm(const Tensor& a, const Tensor& b);      // (M, K) x (K, N)
Tensor bmm(const Tensor& a, const Tensor& b);     // (B, M, K) x (B, K, N)
// x (..., in) , weight (out, in), bias (out) -> (..., out)
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// The transformer MLP linear(gelu(linear(x, fc_weight, fc_bias), "tanh"), proj_weight, proj_bias):
// x (..., C), fc_weight (H, C), fc_bias (H), proj_weight (O, H), proj_bias (O) -> (..., O); biases
// optional. One op and one autograd node, so that a GEMM with a GELU epilogue (CUDA: cuBLASLt's)
// applies the GELU in the first product and its derivative in the product that makes the hidden
// layer's gradient, without the elementwise passes. Where no such GEMM is registered (the CPU), the
// linear and gelu kernels run, with the bits of the composition. Autocast: as linear.
Tensor gelu_mlp(const Tensor& x, const Tensor& fc_weight, const Tensor& fc_bias,
                const Tensor& proj_weight, const Tensor& proj_bias);
// torch.addmm / baddbmm / addbmm: beta * self + alpha * (a @ b), self broadcast to the product
// (addbmm sums the batch of products); beta = 0 ignores self's NaNs, as torch.
Tensor addmm(const Tensor& self, const Tensor& a, const Tensor& b, const Scalar& beta = 1,
             const Scalar& alpha = 1);
Tensor baddbmm(const Tensor& self, const Tensor& a, const Tensor& b, const Scalar& beta = 1,
               const Scalar& alpha = 1);
Tensor addbmm(const Tensor& self, const Tensor& a, const Tensor& b, const Scalar& beta = 1,
              const Scalar& alpha = 1);
Tensor dot(const Tensor& a, const Tensor& b);    // 1-D . 1-D -> 0-dim
Tensor outer(const Tensor& a, const Tensor& b);  // (n) x (m) -> (n, m)
// torch.einsum: "ij,jk->ik", implicit output (sorted letters seen once), "..." broadcasting.
Tensor einsum(std::string_view equation, const std::vector<Tensor>& operands);
// torch.tensordot: contracts a's last `dims` dims with b's first `dims`, or the listed dims.
Tensor tensordot(const Tensor& a, const Tensor& b, int64_t dims = 2);
Tensor tensordot(const Tensor& a, const Tensor& b, const std::vector<int64_t>& dims_a,
                 const std::vector<int64_t>& dims_b);
// torch.diagonal: a view of the diagonal `offset` of the (dim1, dim2) planes, moved last.
Tensor diagonal(const Tensor& a, int64_t offset = 0, int64_t dim1 = 0, int64_t dim2 = 1);
// torch.diag: a 1-D input becomes a square matrix with it on diagonal `offset`; a 2-D input
// gives a copy of that diagonal.
Tensor diag(const Tensor& a, int64_t offset = 0);
Tensor trace(const Tensor& a);  // sum of a 2-D input's main diagonal
// torch.cdist: p-norm distances between the rows of x1 (..., P, M) and x2 (..., R, M).
Tensor cdist(const Tensor& x1, const Tensor& x2, double p = 2.0);
Tensor dist(const Tensor& a, const Tensor& b, double p = 2.0);  // ||a - b||_p (broadcast)
// torch.linalg.cross: the cross product along `dim` (size 3), broadcasting the other dims.
Tensor cross(const Tensor& a, const Tensor& b, int64_t dim = -1);
// torch.nn.functional.bilinear: y_k = x1^T W_k x2 + b_k; x1 (..., in1), x2 (..., in2),
// weight (out, in1, in2), bias (out).
Tensor bilinear(const Tensor& x1, const Tensor& x2, const Tensor& weight,
                const Tensor& bias = Tensor());

// A causal mask (L, S): true where key j may be attended from query i (j <= i), as the
// lower-left triangle torch builds for is_causal.
Tensor causal_mask(int64_t L, int64_t S, Device device = Device::cpu());
// torch.nn.functional.scaled_dot_product_attention: q (..., L, E), k (..., S, E), v (..., S, Ev)
// -> (..., L, Ev). attn_mask: bool (true = attend) or additive float, broadcast to (..., L, S).
// is_causal adds causal_mask(L, S). scale defaults to 1/sqrt(E). q, k, v may be strided views
// (e.g. heads split out of a fused QKV projection): they are read in place. Without a mask, with
// one floating dtype, the same leading dims and dropout_p < 1, a fused kernel computes it without
// an (L, S) score tensor in memory (tensor/attention_kernels.h; its dropout mask is the one the
// dropout op would draw from `gen` over the probabilities); otherwise the composition of matmul,
// softmax and dropout does.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& attn_mask = Tensor(), double dropout_p = 0.0,
                                    bool is_causal = false,
                                    std::optional<double> scale = std::nullopt,
                                    Generator* gen = nullptr);
// torch's recurrent cells (torch._VF.lstm_cell etc.): input (N, I) or (I), hidden (N, H) or (H);
// w_ih (G*H, I), w_hh (G*H, H), biases (G*H) optional; gates in torch's order (LSTM i, f, g, o;
// GRU r, z, n). lstm_cell returns (h', c').
std::tuple<Tensor, Tensor> lstm_cell(const Tensor& input, const Tensor& hx, const Tensor& cx,
                                     const Tensor& w_ih, const Tensor& w_hh,
                                     const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
Tensor gru_cell(const Tensor& input, const Tensor& hx, const Tensor& w_ih, const Tensor& w_hh,
                const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
Tensor rnn_tanh_cell(const Tensor& input, const Tensor& hx, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
Tensor rnn_relu_cell(const Tensor& input, const Tensor& hx, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
// How scaled_dot_product_attention runs a problem the fused path takes (no explicit mask, one
// floating dtype): `fused`, our fused kernels (the default); `cudnn`, cuDNN's fused flash
// attention on CUDA devices (kernels/cuda/attention_cudnn.h; what it declines, and every CPU
// problem, runs on our kernels); `composed`, the matmul/softmax composition. Read once from the
// environment variable FABRIC_ATTENTION (fused, cudnn or composed; unset: fused) unless
// set_attention_backend or set_fused_attention was called first. Which is fastest depends on the
// device (bench_attention on the CPU, bench_gpu on a GPU measure them and bench_gpu picks one).
enum class AttentionBackend : uint8_t { fused, cudnn, composed };
AttentionBackend attention_backend();
void set_attention_backend(AttentionBackend backend);
const char* attention_backend_name(AttentionBackend backend);  // "fused", "cudnn", "composed"
// Whether a fused kernel (ours or cuDNN's) may run: attention_backend() != composed.
bool fused_attention_enabled();
// true: our fused kernels; false: the composition.
void set_fused_attention(bool enabled);

// ---- softmax and normalisation ----------------------------------------------------------------
Tensor softmax(const Tensor& a, int64_t dim, std::optional<DType> dtype = std::nullopt);
Tensor log_softmax(const Tensor& a, int64_t dim, std::optional<DType> dtype = std::nullopt);
// out_dtype: the output's dtype, unset for the input's (after autocast). float16/bfloat16 for a
// float32 input rounds each element of the float32 result once, as a cast after the norm would
// (the same bits), without the float32 output and the cast's pass over it; the gradient may then
// arrive in that dtype and is read as it is. What a block does for the linear layer after it
// under autocast (nn::LayerNorm::forward_to).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5,
                  std::optional<DType> out_dtype = std::nullopt);
// eps unset = torch's default (finfo(dtype).eps). out_dtype as layer_norm's.
Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                std::optional<double> eps = std::nullopt,
                std::optional<DType> out_dtype = std::nullopt);
// x: (N, C, ...). training: normalise with the batch statistics over every dim but 1 and, when
// running_mean/running_var are given, update them in place (not recorded by autograd):
// running = (1 - momentum) * running + momentum * batch stat, the variance unbiased, as torch.
// Not training: normalise with running_mean/running_var (then required).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  bool training = false, double momentum = 0.1, double eps = 1e-5);
// x: (N, C, ...), C divisible by num_groups; weight/bias (C).
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

// ---- indexing, joining, masks -----------------------------------------------------------------
Tensor embedding(const Tensor& weight, const Tensor& indices);  // (V, C), (...) int -> (..., C)
Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& a, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& src);
// The rest of torch's index-based writes, out of place (a copy of `a` with the writes done):
// index_add/index_copy/index_fill along `dim` at the 1-D `index`; scatter at each element of
// `index` (src's value or one scalar); scatter_reduce with reduce "sum" | "prod" | "mean" |
// "amax" | "amin", `a`'s own values joining the reduction when include_self.
Tensor index_add(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& source,
                 const Scalar& alpha = 1);
Tensor index_copy(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& source);
Tensor index_fill(const Tensor& a, int64_t dim, const Tensor& index, const Scalar& value);
Tensor scatter(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& src);
Tensor scatter(const Tensor& a, int64_t dim, const Tensor& index, const Scalar& value);
Tensor scatter_reduce(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& src,
                      std::string_view reduce, bool include_self = true);
// torch.masked_select: the elements where the (broadcast) bool mask is true, as a 1-D tensor.
Tensor masked_select(const Tensor& a, const Tensor& mask);
// torch.masked_scatter: a with its masked positions filled, in order, from source's elements.
Tensor masked_scatter(const Tensor& a, const Tensor& mask, const Tensor& source);
Tensor nonzero(const Tensor& a);  // (count, a.dim()) int64 coordinates, row-major order
// Advanced indexing, torch's a[i0, i1, ...] with int64/bool tensor indices; an undefined Tensor
// keeps that dim whole (":"). index_put writes values there (accumulate: adds, duplicates too).
Tensor index(const Tensor& a, const std::vector<Tensor>& indices);
Tensor index_put(const Tensor& a, const std::vector<Tensor>& indices, const Tensor& values,
                 bool accumulate = false);
// torch.take_along_dim: gather with indices broadcast against a (no dim: over the flattened a).
Tensor take_along_dim(const Tensor& a, const Tensor& indices,
                      std::optional<int64_t> dim = std::nullopt);
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// split/chunk: views of `a`, all outputs of one autograd node whose backward concatenates the
// pieces' gradients (torch's SplitBackward0): O(input) in backward however many pieces.
std::vector<Tensor> split(const Tensor& a, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& a, int64_t chunks, int64_t dim = 0);
// torch.unbind: the slices along `dim` as separate tensors (copies, not views). One autograd node
// for all of them whose backward stacks their gradients (zeros for a slice that got none), where
// per-slice select()s would each scatter into a zero tensor of the whole input: a time loop over
// unbind(x) costs O(L) in backward, over select O(L^2).
std::vector<Tensor> unbind(const Tensor& a, int64_t dim = 0);
Tensor tril(const Tensor& a, int64_t diagonal = 0);
Tensor triu(const Tensor& a, int64_t diagonal = 0);
Tensor one_hot(const Tensor& indices, int64_t num_classes = -1);  // int64 output
// torch.masked_fill: x where mask is false, value where it is true; the bool mask and x broadcast
// against each other, the result keeps x's dtype. A value tensor must be 0-dim; it gets the
// gradient summed over the filled positions (x gets none there, the mask never any).
Tensor masked_fill(const Tensor& x, const Tensor& mask, const Scalar& value);
Tensor masked_fill(const Tensor& x, const Tensor& mask, const Tensor& value);
// torch.flip / roll / Tensor.repeat. roll with no dims rolls the flattened tensor (one shift).
Tensor flip(const Tensor& x, std::vector<int64_t> dims);
Tensor roll(const Tensor& x, std::vector<int64_t> shifts, std::vector<int64_t> dims = {});
Tensor repeat(const Tensor& x, std::vector<int64_t> repeats);
// torch.nn.functional.pad: `pad` = (last dim's left, right, the dim before's left, right, ...);
// mode "constant" (any rank, negative pads crop), "reflect", "replicate" or "circular" (the last
// 1, 2 or 3 dims of a 2-D/3-D, 3-D/4-D or 4-D/5-D input, as torch).
Tensor pad(const Tensor& x, std::vector<int64_t> pad, std::string_view mode = "constant",
           double value = 0.0);
// Inverted dropout (scale kept by 1/(1-p)); the identity when !train or p == 0.
Tensor dropout(const Tensor& a, double p, bool train, Generator* gen = nullptr);

// ---- convolution and pooling (NCHW) -----------------------------------------------------------
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              std::vector<int64_t> stride = {1, 1}, std::vector<int64_t> padding = {0, 0},
              std::vector<int64_t> dilation = {1, 1}, int64_t groups = 1);
Tensor max_pool2d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
                  std::vector<int64_t> padding = {0, 0});
Tensor avg_pool2d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
                  std::vector<int64_t> padding = {0, 0});
// torch's adaptive_avg_pool2d: x (N, C, H, W) or (C, H, W) -> (..., oh, ow); output_size {oh, ow}
// or {s} for s x s. Output row i averages input rows [floor(i*H/oh), ceil((i+1)*H/oh)) (windows
// overlap when oh does not divide H; oh > H repeats rows), and likewise for columns.
Tensor adaptive_avg_pool2d(const Tensor& x, std::vector<int64_t> output_size);
// torch.nn.functional.conv1d: x (N, C, L) or (C, L), weight (O, C/groups, K).
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              int64_t stride = 1, int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1);
// torch.nn.functional.conv_transpose2d: x (N, C, H, W) or (C, H, W), weight (C, O/groups, kH, kW).
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        std::vector<int64_t> stride = {1, 1}, std::vector<int64_t> padding = {0, 0},
                        std::vector<int64_t> output_padding = {0, 0}, int64_t groups = 1,
                        std::vector<int64_t> dilation = {1, 1});
// The 3-d and 1-d siblings: x (N, C, D, H, W) or (C, D, H, W); weight (O, C/groups, kD, kH, kW)
// (transposed: (C, O/groups, ...)); conv_transpose1d on (N, C, L) or (C, L).
Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              std::vector<int64_t> stride = {1, 1, 1}, std::vector<int64_t> padding = {0, 0, 0},
              std::vector<int64_t> dilation = {1, 1, 1}, int64_t groups = 1);
Tensor conv_transpose1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        int64_t stride = 1, int64_t padding = 0, int64_t output_padding = 0,
                        int64_t groups = 1, int64_t dilation = 1);
Tensor conv_transpose3d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        std::vector<int64_t> stride = {1, 1, 1},
                        std::vector<int64_t> padding = {0, 0, 0},
                        std::vector<int64_t> output_padding = {0, 0, 0}, int64_t groups = 1,
                        std::vector<int64_t> dilation = {1, 1, 1});
// 3-d pooling on (N, C, D, H, W) or (C, D, H, W), as the 2-d ones.
Tensor max_pool3d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
                  std::vector<int64_t> padding = {0, 0, 0});
Tensor avg_pool3d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
                  std::vector<int64_t> padding = {0, 0, 0});
// max_pool2d/3d(..., return_indices=True): (values, int64 offset of each window's maximum in its
// flattened (H, W) or (D, H, W) plane) — the indices max_unpool2d/3d take.
std::tuple<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, std::vector<int64_t> kernel,
                                                   std::vector<int64_t> stride = {},
                                                   std::vector<int64_t> padding = {0, 0});
std::tuple<Tensor, Tensor> max_pool3d_with_indices(const Tensor& x, std::vector<int64_t> kernel,
                                                   std::vector<int64_t> stride = {},
                                                   std::vector<int64_t> padding = {0, 0, 0});
Tensor adaptive_avg_pool3d(const Tensor& x, std::vector<int64_t> output_size);
// torch's adaptive max pools: (values, int64 indices into each plane's flattened D*H*W, H*W or
// L). The 3-d one runs in float32 under CPU autocast (torch's CPU fp32 list).
std::tuple<Tensor, Tensor> adaptive_max_pool3d(const Tensor& x, std::vector<int64_t> output_size);
std::tuple<Tensor, Tensor> adaptive_max_pool2d(const Tensor& x, std::vector<int64_t> output_size);
std::tuple<Tensor, Tensor> adaptive_max_pool1d(const Tensor& x, int64_t output_size);
// torch.nn.functional.lp_pool1d / lp_pool2d: (sum over the window of x^p)^(1/p).
Tensor lp_pool1d(const Tensor& x, double norm_type, int64_t kernel, std::optional<int64_t> stride = std::nullopt);
Tensor lp_pool2d(const Tensor& x, double norm_type, std::vector<int64_t> kernel,
                 std::vector<int64_t> stride = {});
// torch.nn.functional.unfold (im2col): (N, C, H, W) -> (N, C*kH*kW, L) sliding blocks; fold
// (col2im) sums them back into (N, C, output_size), overlapping blocks adding up.
Tensor unfold(const Tensor& x, std::vector<int64_t> kernel_size, std::vector<int64_t> dilation = {1, 1},
              std::vector<int64_t> padding = {0, 0}, std::vector<int64_t> stride = {1, 1});
Tensor fold(const Tensor& x, std::vector<int64_t> output_size, std::vector<int64_t> kernel_size,
            std::vector<int64_t> dilation = {1, 1}, std::vector<int64_t> padding = {0, 0},
            std::vector<int64_t> stride = {1, 1});
// torch.nn.functional.interpolate: exactly one of `size` (one entry per spatial dim) and
// `scale_factor`; on (N, C, L) modes "nearest", "nearest-exact", "linear", "area"; on
// (N, C, H, W) "nearest", "nearest-exact", "bilinear", "bicubic", "area" (align_corners for the
// linear/cubic modes, default false).
Tensor interpolate(const Tensor& x, std::vector<int64_t> size, std::vector<double> scale_factor = {},
                   std::string_view mode = "nearest", std::optional<bool> align_corners = std::nullopt);
// torch.nn.functional.pixel_shuffle / pixel_unshuffle: (*, C*r*r, H, W) <-> (*, C, H*r, W*r).
Tensor pixel_shuffle(const Tensor& x, int64_t upscale_factor);
Tensor pixel_unshuffle(const Tensor& x, int64_t downscale_factor);

// ---- losses (reduction: "mean" | "sum" | "none") ----------------------------------------------
// logits (N, C) or (N, C, d...) / (C); target int64 class indices, or (cross_entropy) class
// probabilities of the logits' shape; PyTorch's semantics for ignore_index, label_smoothing, the
// optional per-class weight (C) and the mean (over the non-ignored targets' total weight; over
// positions for probabilities). A weight or probabilities take a composition of differentiable
// ops (ops_loss_weighted.cpp), the unweighted class-index case the fused kernels.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                     std::string_view reduction = "mean", double label_smoothing = 0.0,
                     const Tensor& weight = Tensor());
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index = -100,
                std::string_view reduction = "mean", const Tensor& weight = Tensor());
Tensor mse_loss(const Tensor& input, const Tensor& target, std::string_view reduction = "mean");
// torch.nn.functional's elementwise losses (ops_loss_elementwise.cpp). Floating input and target;
// l1/smooth_l1/huber/kl_div broadcast them against each other (mse/l1/smooth_l1/huber warn when
// the sizes differ, as torch), the BCEs need equal shapes and take weight (and pos_weight, over
// the last dim) broadcast to the input's shape; a weight that requires grad raises while autograd
// records (torch has no derivative for it).
Tensor l1_loss(const Tensor& input, const Tensor& target, std::string_view reduction = "mean");
// beta == 0 is l1_loss; beta < 0 raises.
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target,
                      std::string_view reduction = "mean", double beta = 1.0);
// delta must be > 0; the result has the input's dtype.
Tensor huber_loss(const Tensor& input, const Tensor& target, std::string_view reduction = "mean",
                  double delta = 1.0);
// input: probabilities in [0, 1] (else ValueError); target of the input's dtype; logs clamped
// to >= -100. Refused under CUDA autocast, as torch does.
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target,
                            const Tensor& weight = Tensor(), std::string_view reduction = "mean");
// Numerically stable for any logit; the result has the target's dtype.
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const Tensor& weight = Tensor(),
                                        const Tensor& pos_weight = Tensor(),
                                        std::string_view reduction = "mean");
// input: log-probabilities. reduction also "batchmean" (the sum over input.size(0)); "mean"
// averages over every element, as torch's does, and warns (as torch) that it is not the KL value.
Tensor kl_div(const Tensor& input, const Tensor& target, std::string_view reduction = "mean",
              bool log_target = false);
// torch.nn.functional's margin, embedding and likelihood losses and distances
// (ops_loss_margin.cpp), torch's semantics and argument order; target values as torch requires
// (1/-1 for the ranking/embedding losses, class indices for multi_margin/multilabel_margin).
Tensor margin_ranking_loss(const Tensor& input1, const Tensor& input2, const Tensor& target,
                           double margin = 0.0, std::string_view reduction = "mean");
Tensor hinge_embedding_loss(const Tensor& input, const Tensor& target, double margin = 1.0,
                            std::string_view reduction = "mean");
Tensor soft_margin_loss(const Tensor& input, const Tensor& target,
                        std::string_view reduction = "mean");
Tensor multilabel_soft_margin_loss(const Tensor& input, const Tensor& target,
                                   const Tensor& weight = Tensor(),
                                   std::string_view reduction = "mean");
Tensor cosine_embedding_loss(const Tensor& input1, const Tensor& input2, const Tensor& target,
                             double margin = 0.0, std::string_view reduction = "mean");
Tensor triplet_margin_loss(const Tensor& anchor, const Tensor& positive, const Tensor& negative,
                           double margin = 1.0, double p = 2.0, double eps = 1e-6,
                           bool swap = false, std::string_view reduction = "mean");
Tensor poisson_nll_loss(const Tensor& input, const Tensor& target, bool log_input = true,
                        bool full = false, double eps = 1e-8, std::string_view reduction = "mean");
Tensor gaussian_nll_loss(const Tensor& input, const Tensor& target, const Tensor& var,
                         bool full = false, double eps = 1e-6, std::string_view reduction = "mean");
Tensor multi_margin_loss(const Tensor& input, const Tensor& target, int64_t p = 1,
                         double margin = 1.0, const Tensor& weight = Tensor(),
                         std::string_view reduction = "mean");
Tensor multilabel_margin_loss(const Tensor& input, const Tensor& target,
                              std::string_view reduction = "mean");
Tensor cosine_similarity(const Tensor& x1, const Tensor& x2, int64_t dim = 1, double eps = 1e-8);
Tensor pairwise_distance(const Tensor& x1, const Tensor& x2, double p = 2.0, double eps = 1e-6,
                         bool keepdim = false);

// ---- operators ------------------------------------------------------------------------------
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, const Scalar& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Scalar& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Scalar& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Scalar& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

}  // namespace fabric
