// The attribute structs ops hand to autograd beside their tensors (see op_record.h): what a
// derivative rule needs that the input tensors do not say. One struct per op that needs one.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/scalar.h"
#include "tensor/shape.h"

namespace fabric {

struct ShapeAttrs { Shape input_shape; };                       // view, expand
struct TransposeAttrs { int64_t dim0, dim1; };
struct PermuteAttrs { std::vector<int64_t> dims; };
struct SliceAttrs { Shape input_shape; int64_t dim, start, end, step; };
struct SelectAttrs { Shape input_shape; int64_t dim, index; };
struct UnbindAttrs { Shape input_shape; int64_t dim; };
struct ToDTypeAttrs { DType from; };
struct AlphaAttrs { Scalar alpha; };                             // add, sub
struct ScalarAttrs { Scalar value; };                            // ops with a scalar operand
struct ClampAttrs { std::optional<Scalar> min, max; };
struct GeluAttrs { bool tanh_approx; };
struct LeakyReluAttrs { Scalar negative_slope; };
// elu(x) = scale * (x > 0 ? x : alpha * (exp(input_scale * x) - 1)): selu and celu are elus.
struct EluAttrs { Scalar alpha, scale, input_scale; };
struct SoftplusAttrs { Scalar beta, threshold; };
struct HardtanhAttrs { Scalar min_val, max_val; };
struct ReduceAttrs { std::vector<int64_t> dims; bool keepdim; Shape input_shape; };
// var, and std (recorded as var with take_sqrt: the op list has one entry for both).
struct VarAttrs { std::vector<int64_t> dims; bool keepdim; double correction; bool take_sqrt = false; };
struct NormAttrs { std::vector<int64_t> dims; bool keepdim; double p; };
struct DimAttrs { int64_t dim; bool keepdim = false; };          // max/min with indices, softmax, cumsum
struct NormalizeAttrs { Shape normalized_shape; double eps; };   // layer_norm, rms_norm
struct BatchNormAttrs { bool training; double momentum; double eps; };
struct GroupNormAttrs { int64_t num_groups; double eps; };
struct IndexAttrs { int64_t dim; };                              // index_select, gather, scatter_add
struct CatAttrs { int64_t dim; std::vector<int64_t> sizes; };   // cat, stack
struct TriAttrs { int64_t diagonal; };
struct DropoutAttrs { double p; };
struct Conv2dAttrs { std::vector<int64_t> stride, padding, dilation; int64_t groups; };
struct Pool2dAttrs { std::vector<int64_t> kernel, stride, padding; };
// The fused attention's dropout draw: probability and the Philox (seed, offset) of its mask.
struct AttentionDropout { double p = 0.0; uint64_t seed = 0, offset = 0; };
struct AttentionAttrs { double scale; bool causal; AttentionDropout dropout; };
struct LossAttrs { int64_t ignore_index; std::string reduction; double label_smoothing; };

}  // namespace fabric
