// CUDA kernels whose per-element arithmetic is a shared host/device header give the CPU kernels'
// bits, not just values within a tolerance: the affine map of batch_norm/group_norm
// (tensor/channel_norm_affine.h) for every combination of terms, and bilinear upsampling forward
// and backward (tensor/upsample_math.h), for float32 and float64 (and float16/bfloat16, computed in
// float32). The host tests (ChannelNormAffineShared.*, UpsampleMath.*) hold the CPU kernels and
// the headers to their spec; these hold the device to the CPU. Skipped without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/channel_norm_kernels.h"
#include "tensor/upsample_kernels.h"
#include "tests/common/same_bits.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

const DType kDtypes[] = {DType::float32, DType::float64, DType::float16, DType::bfloat16};

DType acc_of(DType dt) { return dt == DType::float64 ? DType::float64 : DType::float32; }

// out for the terms in `terms` (bit 0: a and u, 1: center, 2: b and v, 3: c) on `device`.
Tensor plane_affine_on(Device device, int terms, int64_t planes, int64_t len, int64_t period,
                       const std::vector<Tensor>& in) {
  std::vector<Tensor> t;
  for (const Tensor& x : in) t.push_back(x.to(device));
  Tensor out = empty({planes * len}, TensorOptions{in[0].dtype(), device});
  PlaneAffineArgs a;
  a.planes = planes;
  a.len = len;
  a.period = period;
  a.dtype = in[0].dtype();
  a.u = terms & 1 ? t[0].data_ptr() : nullptr;
  a.a = terms & 1 ? t[2].data_ptr() : nullptr;
  a.center = terms & 2 ? t[3].data_ptr() : nullptr;
  a.v = terms & 4 ? t[1].data_ptr() : nullptr;
  a.b = terms & 4 ? t[4].data_ptr() : nullptr;
  a.c = terms & 8 ? t[5].data_ptr() : nullptr;
  a.out = out.data_ptr();
  plane_affine_stub(device)(a);
  return out.to(Device::cpu());
}

TEST(CudaRoundingOrder, ChannelNormAffineGivesTheCpuBits) {
  FABRIC_REQUIRE_CUDA();
  struct Case {
    int64_t planes, len, period;
  };
  for (const Case c : {Case{24, 37, 6}, Case{3000, 1, 7}, Case{40, 1000, 0}}) {
    for (DType dt : kDtypes) {
      const int64_t n = c.planes * c.len, k = c.period ? c.period : c.planes;
      const DType acc = acc_of(dt);
      // An offset mean (u and center near 20), where the forms round apart.
      const std::vector<Tensor> in = {test::uniform_tensor({n}, dt, 17, 23, 1),
                                      test::uniform_tensor({n}, dt, -2, 2, 2),
                                      test::uniform_tensor({k}, acc, -1.5f, 1.9f, 3),
                                      test::uniform_tensor({k}, acc, 19, 21, 4),
                                      test::uniform_tensor({k}, acc, -1.3f, 1.3f, 5),
                                      test::uniform_tensor({k}, acc, -0.9f, 0.9f, 6)};
      for (int terms = 0; terms < 16; ++terms) {
        const std::string what = std::string(dtype_name(dt)) + " planes " +
                                 std::to_string(c.planes) + " len " + std::to_string(c.len) +
                                 " terms " + std::to_string(terms);
        expect_same_bits(plane_affine_on(test::kGpu, terms, c.planes, c.len, c.period, in),
                         plane_affine_on(Device::cpu(), terms, c.planes, c.len, c.period, in),
                         what);
      }
    }
  }
}

TEST(CudaRoundingOrder, BilinearUpsamplingGivesTheCpuBits) {
  FABRIC_REQUIRE_CUDA();
  struct Case {
    int64_t H, W, OH, OW;
    bool align_corners;
    double scale = 0;
  };
  for (const Case c :
       {Case{5, 7, 13, 17, false}, Case{50, 60, 33, 47, false}, Case{16, 16, 32, 32, false},
        Case{9, 40, 19, 80, true}, Case{8, 10, 20, 25, false, 2.5}}) {
    for (DType dt : kDtypes) {
      UpsampleDesc d;
      d.planes = 6;
      d.H = c.H;
      d.W = c.W;
      d.OH = c.OH;
      d.OW = c.OW;
      d.bilinear = true;
      d.align_corners = c.align_corners;
      d.scale_h = d.scale_w = c.scale;
      d.dtype = dt;
      const Tensor x = test::uniform_tensor({d.planes * c.H * c.W}, dt, -3, 3, 7);
      const Tensor g = test::uniform_tensor({d.planes * c.OH * c.OW}, dt, -3, 3, 8);
      auto run = [&](Device device) {
        const Tensor xd = x.to(device), gd = g.to(device);
        Tensor y = empty({d.planes * c.OH * c.OW}, TensorOptions{dt, device});
        Tensor dx = empty({d.planes * c.H * c.W}, TensorOptions{dt, device});
        upsample2d_forward_stub(device)(d, xd.data_ptr(), y.data_ptr());
        upsample2d_backward_stub(device)(d, gd.data_ptr(), dx.data_ptr());
        return std::vector<Tensor>{y.to(Device::cpu()), dx.to(Device::cpu())};
      };
      const std::vector<Tensor> got = run(test::kGpu), want = run(Device::cpu());
      const std::string what = std::string(dtype_name(dt)) + " " + std::to_string(c.H) + "x" +
                               std::to_string(c.W) + " -> " + std::to_string(c.OH) + "x" +
                               std::to_string(c.OW);
      expect_same_bits(got[0], want[0], what + " forward");
      expect_same_bits(got[1], want[1], what + " backward");
    }
  }
}

}  // namespace
}  // namespace fabric
