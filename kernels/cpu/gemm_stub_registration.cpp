// Registers the CPU GEMM (kernels/cpu/gemm.h) behind the device-neutral gemm_stub.
#include "kernels/cpu/gemm.h"
#include "tensor/linalg_kernels.h"

namespace fabric::cpu {
namespace {

void gemm_kernel(const GemmDesc& d) {
  GemmArgs g;
  g.batch = d.batch;
  g.M = d.M;
  g.N = d.N;
  g.K = d.K;
  g.a_dtype = d.a_dtype;
  g.b_dtype = d.b_dtype;
  g.c_dtype = d.c_dtype;
  g.A = d.A;
  g.lda = d.lda;
  g.stride_a = d.stride_a;
  g.trans_a = d.trans_a;
  g.B = d.B;
  g.ldb = d.ldb;
  g.stride_b = d.stride_b;
  g.trans_b = d.trans_b;
  g.C = d.C;
  g.ldc = d.ldc;
  g.stride_c = d.stride_c;
  g.alpha = d.alpha;
  g.beta = d.beta;
  g.bias = d.bias;
  g.bias_dtype = d.bias_dtype;
  gemm(g);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(gemm_stub, cpu, &cpu::gemm_kernel);
}  // namespace fabric
