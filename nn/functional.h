// The functional API under fabric::nn (and fabric::nn::functional): the ops of tensor/ops.h that
// layers are made of.
#pragma once
#include "nn/affine_grid.h"
#include "nn/alpha_dropout.h"  // dropout3d, alpha_dropout, feature_alpha_dropout
#include "nn/channel_shuffle.h"
#include "nn/functional_extra.h"  // pdist, softmin
#include "nn/functional_instance_norm.h"
#include "nn/functional_pool1d.h"
#include "nn/grid_sample.h"
#include "tensor/ctc_loss.h"
#include "tensor/fractional_max_pool.h"
#include "tensor/max_unpool.h"
#include "tensor/ops.h"

namespace fabric::nn {

// Inline: fabric::nn::cross_entropy and fabric::nn::functional::cross_entropy both work.
inline namespace functional {

using fabric::adaptive_avg_pool2d;
using fabric::adaptive_avg_pool3d;
using fabric::adaptive_max_pool1d;
using fabric::adaptive_max_pool2d;
using fabric::adaptive_max_pool3d;
using fabric::avg_pool2d;
using fabric::avg_pool3d;
using fabric::batch_norm;
using fabric::binary_cross_entropy;
using fabric::binary_cross_entropy_with_logits;
using fabric::celu;
using fabric::conv1d;
using fabric::conv2d;
using fabric::conv_transpose2d;
using fabric::cosine_embedding_loss;
using fabric::cosine_similarity;
using fabric::cross_entropy;
using fabric::ctc_loss;
using fabric::dropout;
using fabric::elu;
using fabric::embedding;
using fabric::fold;
using fabric::fractional_max_pool2d;
using fabric::fractional_max_pool2d_with_indices;
using fabric::fractional_max_pool3d;
using fabric::fractional_max_pool3d_with_indices;
using fabric::gaussian_nll_loss;
using fabric::gelu;
using fabric::gelu_mlp;
using fabric::glu;
using fabric::group_norm;
using fabric::hardshrink;
using fabric::hardsigmoid;
using fabric::hardswish;
using fabric::hardtanh;
using fabric::hinge_embedding_loss;
using fabric::huber_loss;
using fabric::interpolate;
using fabric::kl_div;
using fabric::l1_loss;
using fabric::layer_norm;
using fabric::leaky_relu;
using fabric::linear;
using fabric::local_response_norm;
using fabric::log_sigmoid;
using fabric::log_softmax;
using fabric::lp_pool1d;
using fabric::lp_pool2d;
using fabric::margin_ranking_loss;
using fabric::max_pool2d;
using fabric::max_pool2d_with_indices;
using fabric::max_pool3d;
using fabric::max_pool3d_with_indices;
using fabric::max_unpool1d;
using fabric::max_unpool2d;
using fabric::max_unpool3d;
using fabric::mish;
using fabric::mse_loss;
using fabric::multi_margin_loss;
using fabric::multilabel_margin_loss;
using fabric::multilabel_soft_margin_loss;
using fabric::nll_loss;
using fabric::normalize;
using fabric::one_hot;
using fabric::pad;
using fabric::pairwise_distance;
using fabric::pixel_shuffle;
using fabric::pixel_unshuffle;
using fabric::poisson_nll_loss;
using fabric::prelu;
using fabric::relu;
using fabric::relu6;
using fabric::rms_norm;
using fabric::rrelu;
using fabric::selu;
using fabric::sigmoid;
using fabric::silu;
using fabric::smooth_l1_loss;
using fabric::soft_margin_loss;
using fabric::softmax;
using fabric::softplus;
using fabric::softshrink;
using fabric::softsign;
using fabric::tanh;
using fabric::tanhshrink;
using fabric::threshold;
using fabric::triplet_margin_loss;
using fabric::unfold;

// Attention lives in the op layer (tensor/ops.h): the fused kernel where one takes the problem.
using fabric::causal_mask;
using fabric::scaled_dot_product_attention;

}  // namespace functional
}  // namespace fabric::nn
