// Linear8bitLt: LLM.int8 forward through int8_linear_forward, with a hand-written backward node
// (the int8 GEMM itself has no derivative rule).
#include "precision/linear_8bit.h"

#include <sstream>

#include "autograd/connect_node.h"
#include "autograd/grad_mode.h"
#include "precision/quant_int8.h"
#include "precision/true_precision.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::precision {

Linear8bitLt::Linear8bitLt(const Linear8bitLtOptions& options, int) : options_(options) {
  FABRIC_CHECK(options.in_features > 0 && options.out_features > 0, ValueError,
               "Linear8bitLt: in_features and out_features must be positive, got ",
               options.in_features, " and ", options.out_features);
}

Linear8bitLt::Linear8bitLt(const Linear8bitLtOptions& options) : Linear8bitLt(options, 0) {
  nn::Linear init({.in_features = options.in_features, .out_features = options.out_features,
                   .bias = options.bias});
  NoGradGuard no_grad;
  set_weight_fp16(init.weight.detach().to(DType::float16), /*requires_grad=*/true);
  if (options.bias) bias = register_parameter("bias", init.bias.detach().clone());
}

std::shared_ptr<Linear8bitLt> Linear8bitLt::from_linear(const nn::Linear& linear,
                                                        bool has_fp16_weights, double threshold) {
  const auto& lo = linear.options();
  std::shared_ptr<Linear8bitLt> m(new Linear8bitLt(
      {.in_features = lo.in_features, .out_features = lo.out_features, .bias = lo.bias,
       .has_fp16_weights = has_fp16_weights, .threshold = threshold},
      0));
  NoGradGuard no_grad;
  // A weight frozen before conversion (LoRA's apply_lora, a user's requires_grad_(false)) stays
  // frozen: int8-training trains only what was trainable.
  m->set_weight_fp16(linear.weight.detach().to(DType::float16).contiguous(), linear.weight.requires_grad());
  if (lo.bias) {
    m->bias = m->register_parameter("bias", linear.bias.detach().to(DType::float32).clone(),
                                    linear.bias.requires_grad());
  }
  return m;
}

void Linear8bitLt::set_weight_fp16(const Tensor& w16, bool requires_grad) {
  Int8RowQuant q = int8_vectorwise_quant(w16, 0.0);
  if (options_.has_fp16_weights) {
    weight = register_parameter("weight", w16.clone(), requires_grad);
  } else {
    weight = register_parameter("weight", q.CA, false);
  }
  // bitsandbytes saves SCB and weight_format only with frozen int8 weights; its trainable layer
  // (has_fp16_weights) saves weight and bias alone and refuses a checkpoint that has an SCB.
  const bool persistent = !options_.has_fp16_weights;
  SCB = register_buffer("SCB", q.SCA, persistent);
  keep_buffer_dtype("SCB");  // float32 row statistics under Module::to(dtype), as Int8Params' SCB
  register_buffer("weight_format", zeros({}, {.dtype = DType::uint8}), persistent);
}

namespace {

// bitsandbytes' weight_format: 0 row-major (what this layer computes with); 1-3 its tiled GPU
// layouts (col32, col_turing, col_ampere), which it un-tiles on load; anything else it refuses.
void check_weight_format(const std::string& prefix, const nn::StateDict& state) {
  const Tensor* f = state.find(prefix + "weight_format");
  if (f == nullptr || !f->defined()) return;
  FABRIC_CHECK(f->numel() == 1 && !is_floating(f->dtype()), ValueError, "Linear8bitLt: ", prefix,
               "weight_format must be one integer, got a ", dtype_name(f->dtype()), " tensor of shape ",
               shape_str(f->sizes()));
  const int64_t format = f->to(DType::int64).item<int64_t>();
  FABRIC_CHECK(format < 1 || format > 3, NotImplementedError, "Linear8bitLt: ", prefix, "weight_format ", format,
               " is one of bitsandbytes' tiled GPU layouts (1 col32, 2 col_turing, 3 col_ampere), which this layer "
               "does not un-tile; save the weight in row-major layout (weight_format 0)");
  FABRIC_CHECK(format == 0, ValueError, "Linear8bitLt: expected a supported weight format for ", prefix,
               "weight_format - got ", format, " (0 row-major; bitsandbytes' 1-3 are tiled layouts)");
}

}  // namespace

void Linear8bitLt::prepare_loaded_state(const std::string& prefix, nn::StateDict& state) const {
  // Quantize on load, as the reference's bitsandbytes layers do. The trainable fp16 weight of
  // int8-training takes a float one by a plain (dtype-converting) copy; the frozen int8 weight has
  // the float one's shape, so its dtype tells a float checkpoint from a quantized one.
  check_weight_format(prefix, state);
  if (options_.has_fp16_weights) {
    CB_ =
        Tensor();  // a loaded weight is quantized at the next forward (bitsandbytes keeps the old)
    return;
  }
  const Tensor* w = state.find(prefix + "weight");
  if (w == nullptr || !w->defined() || !is_floating(w->dtype()) ||
      w->sizes() != Shape({options_.out_features, options_.in_features})) {
    return;
  }
  NoGradGuard no_grad;
  Int8RowQuant q = int8_vectorwise_quant(w->detach().to(DType::float16).contiguous(), 0.0);
  state.insert(prefix + "weight", q.CA);
  state.insert(prefix + "SCB", q.SCA);
  state.insert(prefix + "weight_format", zeros({}, {.dtype = DType::uint8}));
}

namespace {

// 1/127 as the float32 torch multiplies by for `SCB.mul(1.0 / 127.0)` (the Python scalar is taken
// to the tensor's float32).
constexpr float kInv127f = static_cast<float>(1.0 / 127.0);

// The trainable weight as the int8 path reads it: bitsandbytes' MatMul8bitLt quantizes
// B.to(float16) on every forward (spec §7: the int8 modes compute in fp16), whatever dtype
// Module::to gave the weight. The float16 weight that conversion gives is unchanged by the cast.
Tensor fp16_weight_of(const Tensor& weight) { return weight.detach().to(DType::float16); }

}  // namespace

Tensor Linear8bitLt::dequantized_weight() const {
  NoGradGuard no_grad;
  if (options_.has_fp16_weights && CB_.defined()) return int8_vectorwise_dequant(CB_, SCB);
  if (options_.has_fp16_weights) {
    Int8RowQuant q = int8_vectorwise_quant(fp16_weight_of(weight), 0.0);
    return int8_vectorwise_dequant(q.CA, q.SCA);
  }
  return int8_vectorwise_dequant(weight, SCB);
}

Tensor Linear8bitLt::forward(const Tensor& x) {
  FABRIC_CHECK(x.dim() >= 1 && x.size(-1) == options_.in_features, ShapeError,
               "Linear8bitLt.forward: expected input (..., ", options_.in_features, "), got ",
               shape_str(x.sizes()));
  const DType in_dtype = x.dtype();
  const Tensor x16 = cast_floating(x, DType::float16);
  Tensor CB, scb, w16;
  {
    NoGradGuard no_grad;
    if (options_.has_fp16_weights) {
      // int8-training: bitsandbytes' MatMul8bitLt quantizes the weight (from float16, also after
      // Module::to(float32/float64)) in training mode while it has no accumulated .grad, and the
      // first time; otherwise it reuses the last CB and SCB (spec §7). The outlier columns read
      // the current weight either way.
      w16 = fp16_weight_of(weight);
      if (!CB_.defined() || CB_.device() != weight.device() ||
          (is_training() && !weight.grad().defined())) {
        Int8RowQuant q = int8_vectorwise_quant(w16, 0.0);
        CB_ = q.CA;
        SCB.copy_(q.SCA);
      }
      CB = CB_;
    } else {
      CB = weight;
    }
    scb = SCB.clone();
  }
  Tensor out;
  std::vector<int64_t> x_outliers;
  {
    NoGradGuard no_grad;
    // int8-training's outlier columns use the trainable fp16 weight itself (spec §7 step 4).
    out = int8_linear_forward(x16.detach(), CB, scb,
                              bias.defined() ? bias.detach().to(DType::float16) : Tensor(),
                              options_.threshold, w16, &x_outliers);
  }
  const bool w_grad = options_.has_fp16_weights && weight.requires_grad();
  const bool need = grad_enabled() && (x16.requires_grad() || (bias.defined() && bias.requires_grad()) || w_grad);
  if (need) {
    const int64_t K = options_.in_features, N = options_.out_features;
    // For dW, what bitsandbytes' MatMul8bitLt keeps of X: its column-wise quantization (outlier
    // columns zeroed) and the outlier columns themselves in fp16.
    Int8ColQuant xq;
    Tensor cols, sub_x;
    if (w_grad) {
      NoGradGuard no_grad;
      const Tensor x2 = x16.detach().reshape({-1, K});
      // The same X and threshold: the forward's outlier columns, not read back a second time.
      xq = int8_colwise_quant(x2, options_.threshold, &x_outliers);
      if (!xq.outlier_cols.empty()) {
        cols = from_vector(xq.outlier_cols, {static_cast<int64_t>(xq.outlier_cols.size())})
                   .to(x2.device());
        sub_x = index_select(x2, 1, cols);
      }
    }
    const Shape xshape = x16.sizes();
    const DType bias_dtype = bias.defined() ? bias.dtype() : DType::float32;
    const DType w_dtype = weight.dtype();
    auto node = std::make_shared<FunctionNode>(
        "Linear8bitLt", [CB, scb, w_grad, xq, cols, sub_x, xshape, N, bias_dtype,
                         w_dtype](const std::vector<Tensor>& go) {
          std::vector<Tensor> g(3);
          if (!go[0].defined()) return g;
          const Tensor dy = go[0].to(DType::float32).reshape({-1, N});  // (M, N)
          // dX = dY · (CB · SCB / 127) with the int8-dequantized weight rounded to X's float16
          // first, as bitsandbytes' MatMul8bitLt.backward builds it:
          // CB.to(dtype_A).mul_(SCB.unsqueeze(1).mul(1/127)), i.e. f16(f32(q) · f32(SCB ·
          // f32(1/127))), then a float16 GEMM (fp32 accumulation, one rounding). Without the
          // float16 step the sum of several weights can round to the neighbouring float16 value.
          const Tensor w16 =
              mul(CB.to(DType::float32), mul(scb, static_cast<double>(kInv127f)).reshape({N, 1}))
                  .to(DType::float16);
          g[0] = matmul(dy, w16.to(DType::float32)).reshape(xshape).to(DType::float16);
          g[1] = sum(dy, {0}).to(bias_dtype);
          if (w_grad) {
            // dW = dYᵀ · X as MatMul8bitLt computes it: dY in fp16 quantized per output feature
            // (no threshold), the int8 GEMM over the rows, mm_dequant with both column
            // statistics; X's outlier columns (zero in the int8 product) get dYᵀ · X[:, cols].
            const Int8ColQuant gq = int8_colwise_quant(go[0].to(DType::float16).reshape({-1, N}));
            // Rounded once to the weight's dtype; a float64 weight (Module::to) gets the float32
            // result, exactly widened (the int8 dequantization has no float64 output).
            const DType dw_dtype = w_dtype == DType::float64 ? DType::float32 : w_dtype;
            Tensor dw = int8_mm_dequant(int8_matmul(gq.CAt, xq.CAt), gq.SCAt, xq.SCAt, dw_dtype);
            if (cols.defined()) {
              // dW's outlier columns are exactly 0 here, so the sum is the product rounded once.
              dw = index_add(dw, 1, cols, matmul(dy.t(), sub_x.to(DType::float32)).to(dw_dtype));
            }
            g[2] = dw.to(w_dtype);
          }
          return g;
        });
    add_input_edges(*node, {x16, bias, w_grad ? weight : Tensor()});
    out = out.detach();
    set_grad_fn(out, node, 0);
  }
  return cast_floating(out, in_dtype);
}

int64_t Linear8bitLt::quantized_weight_bytes() const {
  // The int8 weight (fp16 when trainable) and the fp32 row statistics.
  return weight.nbytes() + SCB.nbytes();
}

std::string Linear8bitLt::extra_repr() const {
  std::ostringstream os;
  os << "in_features=" << options_.in_features << ", out_features=" << options_.out_features
     << ", bias=" << (options_.bias ? "True" : "False")
     << ", has_fp16_weights=" << (options_.has_fp16_weights ? "True" : "False")
     << ", threshold=" << options_.threshold;
  return os.str();
}

}  // namespace fabric::precision
