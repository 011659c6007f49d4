// The optimizer layer in one include: optimizers (SGD, Adam, AdamW, RMSprop, Adagrad), LR
// schedulers and gradient clipping.
#pragma once
#include "optim/adagrad.h"
#include "optim/adam.h"
#include "optim/clip_grad.h"
#include "optim/lr_composition.h"
#include "optim/lr_decay.h"
#include "optim/lr_scheduler.h"
#include "optim/lr_warm_restarts.h"
#include "optim/one_cycle_lr.h"
#include "optim/optimizer.h"
#include "optim/plateau.h"
#include "optim/rmsprop.h"
#include "optim/sgd.h"
#include "optim/state_dict.h"
