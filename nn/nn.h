// Everything of the nn layer in one include: Module, init, layers, losses, functional ops and
// the models (MLP, GPT, CNN).
#pragma once
#include "nn/activation.h"
#include "nn/cnn.h"
#include "nn/containers.h"
#include "nn/conv.h"
#include "nn/functional.h"
#include "nn/gpt.h"
#include "nn/init.h"
#include "nn/linear.h"
#include "nn/loss.h"
#include "nn/mlp.h"
#include "nn/module.h"
#include "nn/multihead_attention.h"
#include "nn/normalization.h"
#include "nn/transformer.h"
#include "nn/transformer_encoder.h"
#include "nn/upsample.h"
