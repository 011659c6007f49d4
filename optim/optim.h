// The optimizer layer in one include: optimizers, LR schedulers and gradient clipping.
#pragma once
#include "optim/adam.h"
#include "optim/clip_grad.h"
#include "optim/lr_composition.h"
#include "optim/lr_decay.h"
#include "optim/lr_scheduler.h"
#include "optim/one_cycle_lr.h"
#include "optim/optimizer.h"
#include "optim/sgd.h"
#include "optim/state_dict.h"
