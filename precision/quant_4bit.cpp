// 4-bit NF4/FP4 quantization state, argument checks and double quantization (spec §6); the
// element loops are the quantize_4bit / dequantize_4bit and 8-bit blockwise kernels
// (tensor/quant_kernels.h).
#include "precision/quant_4bit.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "precision/torch_cpu_mean.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/quant_kernels.h"

namespace fabric::precision {

// As torch 1.13's CPU kernel computes it (AVX2 build: the reference torch's capability; an AVX-512
// build's 16 lanes round some values differently). The kernel is two-sided: index i below
// steps / 2 is start + step * i, the others end - step * (steps - i - 1). Whole chunks of 2 x 8
// elements go through Vectorized<float>::arange(base, step), whose lane j is base + j * step with
// the product rounded first; base itself, and every element of the scalar tail, are one fused
// multiply-add (the kernel file is built with -mfma, and g++ contracts its a + b * c). Here each
// rounding is written out (std::fma, and a product rounded to float from an exact double product),
// so that no compiler flag (-march=native, -ffp-contract) can change the values.
std::vector<float> torch_linspace_f32(float start, float end, int64_t steps) {
  FABRIC_CHECK(steps >= 2, ValueError, "torch_linspace_f32: steps ", steps, " (expected >= 2)");
  constexpr int64_t kLanes = 8;  // Vectorized<float>::size() under AVX2
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  auto two_sided = [&](int64_t i) {
    return i < halfway ? std::fma(step, static_cast<float>(i), start)
                       : std::fma(-step, static_cast<float>(steps - i - 1), end);
  };
  std::vector<float> out;
  out.reserve(static_cast<size_t>(steps));
  int64_t i = 0;
  for (; i + 2 * kLanes <= steps; i += 2 * kLanes) {
    for (int64_t v = i; v < i + 2 * kLanes; v += kLanes) {
      const float base = two_sided(v);
      out.push_back(base);
      for (int64_t j = 1; j < kLanes; ++j) {
        // j * step is exact in double (24 + 3 bits): its float cast is torch's rounded product.
        out.push_back(base +
                      static_cast<float>(static_cast<double>(j) * static_cast<double>(step)));
      }
    }
  }
  for (; i < steps; ++i) out.push_back(two_sided(i));
  return out;
}

namespace {

bool is_4bit_input_dtype(DType d) {
  return d == DType::float32 || d == DType::float16 || d == DType::bfloat16;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), with the
// fp32 arithmetic of its torch ops: torch.linspace(0.1, 1, 2^k + 1), pairwise means in fp32,
// times 10^(k-6) rounded to fp32; then 0 and 1, sorted. tests/precision/data holds torch's table
// (tools/fixtures/make_dynamic_code_fixture.py).
std::array<float, 256> make_dynamic_code() {
  std::vector<float> data;
  for (int k = 0; k < 7; ++k) {
    const std::vector<float> b = torch_linspace_f32(0.1f, 1.0f, (int64_t{1} << k) + 1);
    const float scale = static_cast<float>(std::pow(10.0, k - 6));
    std::vector<float> means;
    for (size_t i = 0; i + 1 < b.size(); ++i) means.push_back((b[i] + b[i + 1]) / 2.0f);
    for (float m : means) data.push_back(scale * m);
    for (float m : means) data.push_back(-scale * m);
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  std::array<float, 256> out{};
  std::copy(data.begin(), data.end(), out.begin());
  return out;
}

}  // namespace

Quant4Type parse_quant4_type(const std::string& quant_type, const char* op) {
  if (quant_type == "nf4") return Quant4Type::nf4;
  if (quant_type == "fp4") return Quant4Type::fp4;
  throw ValueError(detail::cat(op, ": quant_type '", quant_type, "' (expected 'nf4' or 'fp4')"));
}

void check_blocksize_4bit(int64_t blocksize, const char* op) {
  FABRIC_CHECK(blocksize >= 32 && blocksize <= 4096 && (blocksize & (blocksize - 1)) == 0,
               ValueError, op, ": blocksize ", blocksize,
               " (expected a power of two from 32 to 4096)");
}

const std::array<float, 256>& dynamic_code_8bit() {
  static const std::array<float, 256> code = make_dynamic_code();
  return code;
}

const std::array<float, 255>& dynamic_code_8bit_midpoints() {
  static const std::array<float, 255> mid = [] {
    const auto& c = dynamic_code_8bit();
    std::array<float, 255> m{};
    for (int i = 0; i < 255; ++i) {
      m[i] = static_cast<float>((static_cast<double>(c[i]) + c[i + 1]) / 2.0);
    }
    return m;
  }();
  return mid;
}

Tensor QuantState4bit::quant_map() const {
  const auto& c = parse_quant4_type(quant_type, "QuantState4bit::quant_map") == Quant4Type::nf4
                      ? kNF4Code
                      : kFP4Code;
  return from_vector(std::vector<float>(c.begin(), c.end()), {16});
}

Quantized8bit quantize_blockwise_8bit(const Tensor& A, int64_t blocksize) {
  const char* op = "quantize_blockwise_8bit";
  FABRIC_CHECK(A.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(A.dtype() == DType::float32, DTypeError, op, ": a ", dtype_name(A.dtype()),
               " tensor of shape ", shape_str(A.sizes()), " (expected float32)");
  FABRIC_CHECK(blocksize >= 1, ValueError, op, ": blocksize ", blocksize, " (expected >= 1)");
  // The statistics this quantizes are small (n / blocksize of a 4-bit tensor): the CPU kernel
  // runs on them wherever A lives.
  const Tensor x = A.to(Device::cpu()).contiguous();
  const int64_t n = x.numel();
  const int64_t nblocks = ceil_div(n, blocksize);
  Tensor codes = empty(A.sizes(), {.dtype = DType::uint8});
  Tensor absmax = empty({nblocks}, {.dtype = DType::float32});
  if (n > 0) {
    const Quantize8bitBlockwiseFn kernel = quantize_8bit_blockwise_stub(Device::cpu());
    kernel(x.data<float>(), n, blocksize, dynamic_code_8bit_midpoints().data(),
           codes.data<uint8_t>(), absmax.data<float>());
  }
  Quantized8bit out;
  out.codes = codes.to(A.device());
  out.absmax = absmax.to(A.device());
  return out;
}

namespace {

void check_blockwise_8bit_args(const Tensor& codes, const Tensor& absmax, int64_t blocksize,
                               const Tensor& code, const char* op) {
  FABRIC_CHECK(codes.defined() && absmax.defined(), ValueError, op, ": got an undefined tensor");
  FABRIC_CHECK(codes.dtype() == DType::uint8, DTypeError, op, ": codes are ",
               dtype_name(codes.dtype()), " (expected uint8)");
  FABRIC_CHECK(absmax.dtype() == DType::float32, DTypeError, op, ": absmax is ",
               dtype_name(absmax.dtype()), " (expected float32)");
  FABRIC_CHECK(blocksize >= 1, ValueError, op, ": blocksize ", blocksize, " (expected >= 1)");
  const int64_t n = codes.numel();
  FABRIC_CHECK(absmax.numel() == ceil_div(n, blocksize), ShapeError, op, ": ", n,
               " codes in blocks of ", blocksize, " need ", ceil_div(n, blocksize),
               " absmax values, got ", absmax.numel());
  if (code.defined()) {
    FABRIC_CHECK(code.dtype() == DType::float32 && code.numel() == 256, ValueError, op,
                 ": the code is a ", dtype_name(code.dtype()), " tensor of shape ",
                 shape_str(code.sizes()), " (expected 256 float32 values)");
  }
}

// The 8-bit blockwise dequantization on the CPU (the statistics are small: n / blocksize of a
// 4-bit tensor), into a flat float32 CPU tensor; the arguments are checked by the callers.
Tensor dequantize_blockwise_8bit_cpu(const Tensor& codes, const Tensor& absmax, int64_t blocksize,
                                     const Tensor& code) {
  const Tensor q = codes.to(Device::cpu()).contiguous();
  const Tensor a = absmax.to(Device::cpu()).contiguous();
  const Tensor table = code.defined() ? code.to(Device::cpu()).contiguous() : Tensor();
  const int64_t n = q.numel();
  Tensor out = empty({n}, {.dtype = DType::float32});
  if (n > 0) {
    dequantize_8bit_blockwise_stub(Device::cpu())(
        q.data<uint8_t>(), a.data<float>(), n, blocksize,
        table.defined() ? table.data<float>() : dynamic_code_8bit().data(), out.data<float>());
  }
  return out;
}

}  // namespace

Tensor dequantize_blockwise_8bit(const Tensor& codes, const Tensor& absmax, int64_t blocksize,
                                 const Tensor& code) {
  check_blockwise_8bit_args(codes, absmax, blocksize, code, "dequantize_blockwise_8bit");
  return dequantize_blockwise_8bit_cpu(codes, absmax, blocksize, code)
      .view(codes.sizes())
      .to(codes.device());
}

Quantized4bit quantize_4bit(const Tensor& A, int64_t blocksize, const std::string& quant_type,
                            bool compress_statistics) {
  const char* op = "quantize_4bit";
  FABRIC_CHECK(A.defined(), ValueError, op, ": got an undefined tensor");
  check_blocksize_4bit(blocksize, op);
  const Quant4Type type = parse_quant4_type(quant_type, op);
  FABRIC_CHECK(is_4bit_input_dtype(A.dtype()), DTypeError, op, ": a ", dtype_name(A.dtype()),
               " tensor of shape ", shape_str(A.sizes()),
               " (expected float32, float16 or bfloat16)");
  const Tensor x = A.contiguous();
  const int64_t n = x.numel();
  const int64_t nblocks = ceil_div(n, blocksize);
  Quantized4bit out;
  out.packed = empty({(n + 1) / 2, 1}, {.dtype = DType::uint8, .device = A.device()});
  Tensor absmax = empty({nblocks}, {.dtype = DType::float32, .device = A.device()});
  if (n > 0) {
    const Quantize4bitFn kernel = quantize_4bit_stub(A.device());
    kernel(x.data_ptr(), x.dtype(), n, blocksize, type, out.packed.data<uint8_t>(),
           absmax.data<float>());
  }
  QuantState4bit& st = out.state;
  st.blocksize = blocksize;
  st.quant_type = quant_type;
  st.dtype = A.dtype();
  st.shape = A.sizes();
  st.absmax = absmax;
  if (compress_statistics) {
    // The statistics are small (n / blocksize values): centred and quantized on the CPU, in
    // place (the fp32 absmax is not kept), around bitsandbytes' absmax.mean() as torch's CPU
    // kernel sums it.
    Tensor a = absmax.device().is_cpu() ? absmax : absmax.to(Device::cpu());
    float* av = a.data<float>();
    st.nested_offset = torch_cpu_mean_float32(av, nblocks);
    for (int64_t i = 0; i < nblocks; ++i) av[i] -= st.nested_offset;
    const Quantized8bit q = quantize_blockwise_8bit(a, 256);
    st.nested = true;
    st.nested_blocksize = 256;
    st.absmax = q.codes.to(A.device());
    st.nested_absmax = q.absmax.to(A.device());
  }
  return out;
}

Tensor absmax_of(const QuantState4bit& st) {
  const char* op = "dequantize_4bit";
  const int64_t nblocks = ceil_div(st.numel(), st.blocksize);
  FABRIC_CHECK(st.absmax.defined(), ValueError, op, ": the quant state has no absmax");
  FABRIC_CHECK(st.absmax.numel() == nblocks, ShapeError, op, ": ", st.numel(),
               " elements in blocks of ", st.blocksize, " need ", nblocks,
               " absmax values, the state has ", st.absmax.numel());
  if (!st.nested) {
    FABRIC_CHECK(st.absmax.dtype() == DType::float32, DTypeError, op, ": absmax is ",
                 dtype_name(st.absmax.dtype()), " (expected float32 when not nested)");
    return st.absmax.contiguous();
  }
  FABRIC_CHECK(st.nested_absmax.defined(), ValueError, op,
               ": a nested quant state has no nested_absmax");
  // The code the statistics were quantized with (a loaded checkpoint's nested_quant_map), as
  // bitsandbytes dequantizes with state2.code: a torch of other CPU kernels builds another table.
  // The centred statistic is rounded, then the offset added (two roundings, as bitsandbytes'
  // dequantize_blockwise(...) + offset), in one pass.
  check_blockwise_8bit_args(st.absmax, st.nested_absmax, st.nested_blocksize, st.nested_code,
                            "dequantize_blockwise_8bit");
  // Tensor ops on the statistics' own device, not the CPU kernel: every forward of a layer asks
  // for them, and a round trip through the host would make a GPU step wait once per layer. The
  // arithmetic is the kernel's (code[c] * absmax2[block] rounded to float32, then + offset
  // rounded), so both devices give the same bits.
  const Device dev = st.absmax.device();
  const int64_t n = st.absmax.numel();
  const int64_t bs = st.nested_blocksize;
  const int64_t blocks = ceil_div(n, bs);
  const Tensor table =
      st.nested_code.defined()
          ? st.nested_code.to(dev).to(DType::float32)
          : from_vector(std::vector<float>(dynamic_code_8bit().begin(), dynamic_code_8bit().end()),
                        {256})
                .to(dev);
  Tensor values = index_select(table, 0, st.absmax.reshape({n}).to(DType::int64));
  if (blocks * bs != n) {
    values = cat({values, zeros({blocks * bs - n}, {.dtype = DType::float32, .device = dev})});
  }
  const Tensor scaled =
      mul(values.view({blocks, bs}), st.nested_absmax.to(DType::float32).reshape({blocks, 1}))
          .reshape({blocks * bs})
          .narrow(0, 0, n);
  return add(scaled, static_cast<double>(st.nested_offset)).contiguous();
}

namespace {

// The checks of a dequantization's arguments; the state's quantization type.
Quant4Type check_dequantize_4bit_args(const Tensor& packed, const QuantState4bit& st) {
  const char* op = "dequantize_4bit";
  FABRIC_CHECK(packed.defined(), ValueError, op, ": got an undefined packed tensor");
  FABRIC_CHECK(packed.dtype() == DType::uint8, DTypeError, op, ": packed is ",
               dtype_name(packed.dtype()), " (expected uint8)");
  check_blocksize_4bit(st.blocksize, op);
  const Quant4Type type = parse_quant4_type(st.quant_type, op);
  FABRIC_CHECK(is_4bit_input_dtype(st.dtype), DTypeError, op, ": the state's dtype is ",
               dtype_name(st.dtype), " (expected float32, float16 or bfloat16)");
  for (int64_t s : st.shape) {
    FABRIC_CHECK(s >= 0, ShapeError, op, ": the state's shape ", shape_str(st.shape),
                 " has a negative size");
  }
  const int64_t n = st.numel();
  FABRIC_CHECK(packed.numel() == (n + 1) / 2, ShapeError, op, ": a state of shape ",
               shape_str(st.shape), " needs ", (n + 1) / 2, " packed bytes, got ", packed.numel(),
               " (shape ", shape_str(packed.sizes()), ")");
  return type;
}

}  // namespace

namespace {

// Checks the arguments, then runs launch(packed bytes, absmax, n, type, out) into a fresh tensor
// of the state's shape in `dtype` (no call for an empty state).
template <typename Launch>
Tensor dequantize_4bit_into(const Tensor& packed, const QuantState4bit& st, DType dtype,
                            const Launch& launch) {
  const Quant4Type type = check_dequantize_4bit_args(packed, st);
  const int64_t n = st.numel();
  const Tensor absmax = absmax_of(st).to(packed.device());
  const Tensor p = packed.contiguous();
  Tensor out = empty(st.shape, {.dtype = dtype, .device = packed.device()});
  if (n > 0) launch(p.data<uint8_t>(), absmax.data<float>(), n, type, out.data_ptr());
  return out;
}

}  // namespace

Tensor dequantize_4bit(const Tensor& packed, const QuantState4bit& st) {
  return dequantize_4bit_into(packed, st, st.dtype,
                              [&](const uint8_t* p, const float* absmax, int64_t n,
                                  Quant4Type type, void* out) {
                                dequantize_4bit_stub(packed.device())(p, absmax, n, st.blocksize,
                                                                      type, st.dtype, out);
                              });
}

Tensor dequantize_4bit(const Tensor& packed, const QuantState4bit& st, DType dtype) {
  FABRIC_CHECK(is_4bit_input_dtype(dtype), DTypeError, "dequantize_4bit: to ", dtype_name(dtype),
               " (expected float32, float16 or bfloat16)");
  const Dequantize4bitViaFn kernel = dequantize_4bit_via_stub.find(packed.device());
  // Without a one-pass kernel (CUDA), or with nothing to round twice, the composition is one
  // pass already or the only way.
  if (kernel == nullptr || dtype == st.dtype) return dequantize_4bit(packed, st).to(dtype);
  return dequantize_4bit_into(packed, st, dtype,
                              [&](const uint8_t* p, const float* absmax, int64_t n,
                                  Quant4Type type, void* out) {
                                kernel(p, absmax, n, st.blocksize, type, st.dtype, dtype, out);
                              });
}

}  // namespace fabric::precision
