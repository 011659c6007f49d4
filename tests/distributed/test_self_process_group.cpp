// SelfProcessGroup: the one-rank group one-process ZeRO runs on. Its collectives are what N ranks'
// would give with N = 1 (copies or nothing), complete on return; point-to-point has no peer.
#include <gtest/gtest.h>

#include "distributed/self_process_group.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric::distributed {
namespace {

TEST(SelfProcessGroup, CollectivesOfOneRank) {
  SelfProcessGroup pg;
  EXPECT_EQ(pg.rank(), 0);
  EXPECT_EQ(pg.size(), 1);
  Tensor t = arange(4, DType::float32);
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max}) {
    WorkPtr w = pg.all_reduce(t, op);
    EXPECT_TRUE(w->is_completed());
    EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 1, 2, 3}));
  }
  Tensor out = zeros({2, 2});
  pg.reduce_scatter(out, t)->wait();
  EXPECT_EQ(out.reshape({-1}).to_vector<float>(), (std::vector<float>{0, 1, 2, 3}));
  Tensor gathered = zeros({4});
  pg.all_gather(gathered, mul(t, 2))->wait();
  EXPECT_EQ(gathered.to_vector<float>(), (std::vector<float>{0, 2, 4, 6}));
  // In place: the input is the output's own slot.
  pg.all_gather(gathered, gathered)->wait();
  EXPECT_EQ(gathered.to_vector<float>(), (std::vector<float>{0, 2, 4, 6}));
  Tensor v = zeros({4});
  pg.all_gather_v(v, t, {4})->wait();
  EXPECT_EQ(v.to_vector<float>(), (std::vector<float>{0, 1, 2, 3}));
  pg.broadcast(t, 0)->wait();
  pg.barrier()->wait();
}

TEST(SelfProcessGroup, MismatchesAndPeersAreValueErrors) {
  SelfProcessGroup pg;
  Tensor t = zeros({4}), small = zeros({3});
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg.all_gather(small, t); }), "expected the input's 4");
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg.reduce_scatter(small, t); }), "reduce_scatter");
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg.all_gather_v(t, t, {2, 2}); }), "one count");
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg.broadcast(t, 1); }), "root must be 0");
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg.send(t, 1); }), "rank 0 is the only rank");
  EXPECT_CONTAINS(thrown<ValueError>([&] { pg.recv(t, 1); }), "rank 0 is the only rank");
}

}  // namespace
}  // namespace fabric::distributed
