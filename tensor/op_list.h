// Every op, declared once with its autocast policy on CPU and on CUDA (spec §3). The X-macro
// gives the OpId enum, the op names for messages, and the policy table autocast reads.
//   FABRIC_OP(name, cpu_policy, cuda_policy)
// Policies: none (run in the inputs' dtype), lower (cast floating inputs to the autocast dtype),
// fp32 (cast to float32), fp32_out (compute and return float32 without casting inputs:
// FP32_SET_OPT_DTYPE), promote (cast to the widest floating input dtype).
#pragma once

#define FABRIC_OP_LIST(X)                   \
  /* conversions and views */               \
  X(to_dtype, none, none)                   \
  X(to_device, none, none)                  \
  X(clone, none, none)                      \
  X(view, none, none)                       \
  X(transpose, none, none)                  \
  X(permute, none, none)                    \
  X(slice, none, none)                      \
  X(select, none, none)                     \
  X(expand, none, none)                     \
  X(detach, none, none)                     \
  /* binary elementwise */                  \
  X(add, none, none)                        \
  X(sub, none, none)                        \
  X(mul, none, none)                        \
  X(div, none, none)                        \
  X(maximum, none, none)                    \
  X(minimum, none, none)                    \
  X(pow, none, fp32)                        \
  X(eq, none, none)                         \
  X(ne, none, none)                         \
  X(lt, none, none)                         \
  X(le, none, none)                         \
  X(gt, none, none)                         \
  X(ge, none, none)                         \
  X(logical_and, none, none)                \
  X(logical_or, none, none)                 \
  X(where, none, none)                      \
  X(addcmul, none, promote)                 \
  X(atan2, none, promote)                   \
  X(fmod, none, none)                       \
  X(remainder, none, none)                  \
  X(logical_xor, none, none)                \
  X(addcdiv, none, promote)                 \
  /* unary elementwise */                   \
  X(neg, none, none)                        \
  X(abs, none, none)                        \
  X(exp, none, fp32)                        \
  X(log, none, fp32)                        \
  X(sqrt, none, none)                       \
  X(rsqrt, none, fp32)                      \
  X(tanh, none, none)                       \
  X(sigmoid, none, none)                    \
  X(relu, none, none)                       \
  X(gelu, none, none)                       \
  X(silu, none, none)                       \
  X(sin, none, none)                        \
  X(cos, none, none)                        \
  X(reciprocal, none, fp32)                 \
  X(logical_not, none, none)                \
  X(clamp, none, none)                      \
  X(log1p, none, fp32)                      \
  X(expm1, none, fp32)                      \
  X(erf, none, none)                        \
  X(floor, none, none)                      \
  X(ceil, none, none)                       \
  X(round, none, none)                      \
  X(trunc, none, none)                      \
  X(sign, none, none)                       \
  X(tan, none, fp32)                        \
  X(asin, none, fp32)                       \
  X(acos, none, fp32)                       \
  X(atan, none, none)                       \
  X(sinh, none, fp32)                       \
  X(cosh, none, fp32)                       \
  X(asinh, none, none)                      \
  X(acosh, none, none)                      \
  X(atanh, none, none)                      \
  X(log2, none, fp32)                       \
  X(log10, none, fp32)                      \
  X(erfinv, none, fp32)                     \
  X(isnan, none, none)                      \
  X(isinf, none, none)                      \
  X(isfinite, none, none)                   \
  X(nan_to_num, none, none)                 \
  /* parameterised activations (ops_activation.cpp); softplus is on CUDA's fp32 list */ \
  X(leaky_relu, none, none)                 \
  X(elu, none, none)   /* also selu, celu */ \
  X(softplus, none, fp32)                   \
  X(hardtanh, none, none) /* also relu6 */  \
  X(mish, none, none)                       \
  X(hardswish, none, none)                  \
  X(hardsigmoid, none, none)                \
  X(prelu, lower, lower)                    \
  X(glu, none, none)                        \
  X(log_sigmoid, none, none)                \
  X(hardshrink, none, none)                 \
  X(softshrink, none, none)                 \
  X(threshold, none, none)                  \
  X(rrelu, none, none)                      \
  /* reductions and scans */                \
  X(sum, none, fp32_out)                    \
  X(mean, none, none)                       \
  X(max, none, none)                        \
  X(min, none, none)                        \
  X(amax, none, none)                       \
  X(amin, none, none)                       \
  X(argmax, none, none)                     \
  X(argmin, none, none)                     \
  X(var, none, none)                        \
  X(norm, none, fp32_out)                   \
  X(logsumexp, none, fp32)                  \
  X(cumsum, none, fp32_out)                 \
  X(prod, fp32, fp32_out)                   \
  X(cumprod, none, fp32_out)                \
  X(all, none, none)                        \
  X(any, none, none)                        \
  X(sort, none, none)                       \
  X(topk, none, none)                       \
  /* linear algebra */                      \
  X(matmul, lower, lower)                   \
  X(mm, lower, lower)                       \
  X(bmm, lower, lower)                      \
  X(linear, lower, lower)                   \
  X(gelu_mlp, lower, lower)                 \
  X(scaled_dot_product_attention, lower, lower) \
  X(addmm, lower, lower)                    \
  X(baddbmm, lower, lower)                  \
  X(addbmm, lower, lower)                   \
  X(dot, none, promote)                     \
  X(einsum, none, lower)                    \
  X(tensordot, lower, promote)              \
  X(diagonal, none, none)                   \
  X(diag, none, none)                       \
  X(trace, fp32, none)                      \
  X(cdist, fp32, fp32)                      \
  X(dist, none, fp32)                       \
  X(cross, none, promote)                   \
  X(bilinear, none, promote)                \
  /* recurrent cells (ops_rnn.cpp): compositions; CUDA's lower list has the cells */ \
  X(lstm_cell, none, lower)                 \
  X(gru_cell, none, lower)                  \
  X(rnn_tanh_cell, none, lower)             \
  X(rnn_relu_cell, none, lower)             \
  /* normalisation and activations over a dim */ \
  X(softmax, none, fp32_out)                \
  X(log_softmax, none, fp32_out)            \
  X(layer_norm, none, fp32)   /* CPU list has no layer_norm */ \
  X(rms_norm, none, none)     /* in neither list */     \
  X(batch_norm, none, none)   /* in neither list */     \
  X(group_norm, none, fp32)   /* CPU list has no group_norm */ \
  /* indexing and joining */                \
  X(embedding, none, none)                  \
  X(index_select, none, none)               \
  X(gather, none, none)                     \
  X(scatter_add, none, promote)             \
  X(index_add, none, none)                  \
  X(index_copy, promote, none)              \
  X(index_fill, none, none)                 \
  X(scatter, none, none)                    \
  X(scatter_reduce, none, none)             \
  X(masked_select, none, none)              \
  X(masked_scatter, none, none)             \
  X(nonzero, none, none)                    \
  X(index, none, none)                      \
  X(index_put, none, promote)               \
  X(split, none, none)                      \
  X(cat, promote, none)                     \
  X(stack, promote, none)                   \
  X(tril, none, none)                       \
  X(triu, none, none)                       \
  X(one_hot, none, none)                    \
  X(masked_fill, none, none) /* a composition (where), listed for its autocast class */ \
  X(flip, none, none)                       \
  X(roll, none, none)                       \
  X(repeat, none, none)                     \
  X(unbind, none, none)                     \
  X(pad, none, none)          /* constant mode */ \
  X(reflection_pad, fp32, none)             \
  X(replication_pad, fp32, none)            \
  X(dropout, none, none)                    \
  /* convolution and pooling */             \
  X(conv2d, lower, lower)                   \
  X(max_pool2d, none, none)                 \
  X(avg_pool2d, none, none)                 \
  X(adaptive_avg_pool2d, none, none)  /* CPU's fp32 list has the 3-d one only */ \
  X(conv1d, lower, lower)                   \
  X(conv_transpose2d, lower, lower)         \
  X(upsample_nearest2d, none, fp32)         \
  X(upsample_bilinear2d, none, fp32)        \
  X(upsample_nearest1d, none, fp32)         \
  X(upsample_linear1d, none, fp32)          \
  X(upsample_bicubic2d, none, fp32)         \
  X(upsample_nearest3d, none, fp32)         \
  X(upsample_trilinear3d, none, fp32)       \
  X(pixel_shuffle, none, none)              \
  X(pixel_unshuffle, none, none)            \
  X(conv3d, lower, lower)                   \
  X(conv_transpose1d, lower, lower)         \
  X(conv_transpose3d, lower, lower)         \
  X(max_pool3d, fp32, none)                 \
  X(avg_pool3d, fp32, none)                 \
  X(adaptive_avg_pool3d, fp32, none)        \
  X(adaptive_max_pool2d, none, none)        \
  X(adaptive_max_pool3d, fp32, none)        \
  X(max_unpool2d, fp32, none)               \
  X(max_unpool3d, fp32, none)               \
  X(fractional_max_pool2d, fp32, none)      \
  X(fractional_max_pool3d, fp32, none)      \
  X(unfold, none, none)                     \
  X(fold, none, none)                       \
  /* their gradients as recorded ops, for double backward (autograd/double_backward.cpp) */ \
  X(conv2d_backward_input, none, none)      \
  X(conv2d_backward_weight, none, none)     \
  X(max_pool2d_backward, none, none)        \
  X(avg_pool2d_backward, none, none)        \
  X(adaptive_avg_pool2d_backward, none, none) \
  X(conv3d_backward_input, none, none)      \
  X(conv3d_backward_weight, none, none)     \
  X(max_pool3d_backward, none, none)        \
  X(avg_pool3d_backward, none, none)        \
  X(adaptive_avg_pool3d_backward, none, none) \
  /* losses */                              \
  X(cross_entropy, fp32, fp32)              \
  X(nll_loss, fp32, fp32)                   \
  X(mse_loss, fp32, fp32)                   \
  /* elementwise losses (ops_loss_elementwise.cpp): compositions, listed for their autocast    \
     class; binary_cross_entropy records itself (torch's clamped gradient) and is banned under \
     CUDA autocast by the op */                                                                \
  X(l1_loss, fp32, fp32)                    \
  X(smooth_l1_loss, fp32, fp32)             \
  X(huber_loss, fp32, fp32)                 \
  X(binary_cross_entropy, fp32, none)       \
  X(binary_cross_entropy_with_logits, fp32, fp32) \
  X(kl_div, fp32, fp32)                     \
  /* more losses and distances (ops_loss_margin.cpp): compositions, listed for their autocast class */ \
  X(margin_ranking_loss, fp32, fp32)        \
  X(hinge_embedding_loss, fp32, fp32)       \
  X(soft_margin_loss, fp32, fp32)           \
  X(multilabel_soft_margin_loss, none, none) \
  X(cosine_embedding_loss, fp32, fp32)      \
  X(triplet_margin_loss, fp32, fp32)        \
  X(poisson_nll_loss, fp32, fp32)           \
  X(gaussian_nll_loss, none, none)          \
  X(multi_margin_loss, fp32, fp32)          \
  X(multilabel_margin_loss, fp32, fp32)     \
  X(ctc_loss, fp32, none)                   \
  X(cosine_similarity, none, fp32)          \
  X(pairwise_distance, none, none)
