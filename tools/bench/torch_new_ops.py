# PyTorch's side of bench_new_ops: the same ops on the same shapes, printed as
# "case threads fwd_ms fwdbwd_ms" lines (medians; nan where a case has no backward row).
from torch_op_cases import run_op_cases

M16 = 16 << 20


def make_cases(torch, F):
    def leaf(*shape):
        return torch.randn(*shape).requires_grad_(True)

    def rows(high, *shape):
        return torch.randint(0, high, shape)

    def chunk_loop(x):
        acc = None
        for c in torch.chunk(x, 256, 0):
            acc = c if acc is None else acc + c
        return acc

    # name: (make inputs, fn, has backward) -- the twins of bench_new_ops.cpp's cases.
    cases = {
        "einsum_bhqd_bhkd": (lambda: [leaf(8, 8, 256, 64), leaf(8, 8, 256, 64)],
                             lambda a, b: torch.einsum("bhqd,bhkd->bhqk", a, b), True),
        "einsum_ij_jk_1024": (lambda: [leaf(1024, 1024), leaf(1024, 1024)],
                              lambda a, b: torch.einsum("ij,jk->ik", a, b), True),
        "baddbmm_32x256": (lambda: [leaf(32, 256, 256), leaf(32, 256, 256), leaf(32, 256, 256)],
                           torch.baddbmm, True),
        "cdist_p2_2048x64": (lambda: [leaf(2048, 64), leaf(2048, 64)],
                             lambda a, b: torch.cdist(a, b, p=2.0), True),
        "cdist_p1_2048x64": (lambda: [leaf(2048, 64), leaf(2048, 64)],
                             lambda a, b: torch.cdist(a, b, p=1.0), True),
        "conv3d_8to16_k3": (lambda: [leaf(2, 8, 16, 32, 32), leaf(16, 8, 3, 3, 3), leaf(16)],
                            F.conv3d, True),
        "max_pool3d_2": (lambda: [leaf(4, 16, 16, 32, 32)], lambda x: F.max_pool3d(x, 2), True),
        "unfold_3x3_p1": (lambda: [leaf(8, 64, 56, 56)],
                          lambda x: F.unfold(x, 3, padding=1), True),
        "fold_3x3_p1": (lambda: [leaf(8, 64 * 9, 56 * 56)],
                        lambda x: F.fold(x, (56, 56), 3, padding=1), True),
        "scatter_reduce_amax": (lambda: [leaf(10000, 64), rows(10000, 16384, 64), leaf(16384, 64)],
                                lambda a, i, s: torch.scatter_reduce(a, 0, i, s, "amax"), True),
        "index_add_1M": (lambda: [leaf(10000, 64), rows(10000, 16384), leaf(16384, 64)],
                         lambda a, i, s: torch.index_add(a, 0, i, s), True),
        "index_gather_1M": (lambda: [leaf(10000, 64), rows(10000, 16384)], lambda a, i: a[i], True),
        "gather_dim0_1M": (lambda: [leaf(10000, 64), rows(10000, 16384, 64)],
                           lambda a, i: torch.gather(a, 0, i), True),
        "index_put_acc_1M": (lambda: [leaf(10000, 64), rows(10000, 16384), leaf(16384, 64)],
                             lambda a, i, v: torch.index_put(a, (i,), v, accumulate=True), True),
        "masked_select_4M": (lambda: [leaf(4 << 20), torch.randn(4 << 20) > 0],
                             torch.masked_select, True),
        "copy_16M": (lambda: [leaf(M16)], torch.clone, True),
        "rand_4M_torch_rng": (lambda: [], lambda: torch.rand(4 << 20), False),
        "randn_4M_torch_rng": (lambda: [], lambda: torch.randn(4 << 20), False),
        "dropout_4M_torch_rng": (lambda: [leaf(4 << 20)], lambda x: F.dropout(x, 0.1, True), True),
        "transpose_copy_2048": (lambda: [leaf(2048, 2048)], lambda x: x.t().contiguous(), True),
        "relu_t_2048": (lambda: [leaf(2048, 2048)], lambda x: torch.relu(x.t()), True),
        "add_tt_2048": (lambda: [leaf(2048, 2048), leaf(2048, 2048)], lambda a, b: a.t() + b.t(), True),
        "log_sigmoid_16M": (lambda: [leaf(M16)], F.logsigmoid, True),
        "glu_16M": (lambda: [leaf(4096, 4096)], lambda x: F.glu(x, -1), True),
        "prelu_16M_c64": (lambda: [leaf(16, 64, 128, 128), torch.full((64,), 0.25).requires_grad_(True)],
                          F.prelu, True),
        "chunk256_loop": (lambda: [leaf(256 * 256, 1024)], chunk_loop, True),
        "embedding_bag_mean": (lambda: [leaf(50000, 128), rows(50000, 4096, 20)],
                               lambda w, i: F.embedding_bag(i, w, mode="mean"), True),
    }
    return cases


run_op_cases(make_cases)
