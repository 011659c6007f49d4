// Umbrella header an embedding app includes: <fabric/fabric.h> brings in the public API.
#pragma once
#include "tensor/tensor.h"
