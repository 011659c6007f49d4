# PyTorch's side of bench_core_ops: the same ops on the same shapes, printed as
# "case threads fwd_ms fwdbwd_ms" lines (medians; nan where a case has no backward row).
from torch_op_cases import run_op_cases

ROWS = (2048, 2048)
FOUR_D = (16, 64, 64, 64)


def make_cases(torch, F):
    def leaf(*shape):
        return torch.randn(*shape).requires_grad_(True)

    def rows(high, *shape):
        return torch.randint(0, high, shape)

    def mask(*shape):
        return torch.randn(*shape) > 0

    def rowwise(fn, backward=True):
        return (lambda: [leaf(*ROWS)], fn, backward)

    # name: (make inputs, fn, has backward) -- the twins of bench_core_ops.cpp's cases.
    return {
        "copy_4M": rowwise(torch.clone),
        "softmax_last": rowwise(lambda x: torch.softmax(x, -1)),
        "softmax_dim1_4d": (lambda: [leaf(*FOUR_D)], lambda x: torch.softmax(x, 1), True),
        "log_softmax_last": rowwise(lambda x: torch.log_softmax(x, -1)),
        "log_softmax_dim1_4d": (lambda: [leaf(*FOUR_D)], lambda x: torch.log_softmax(x, 1), True),
        "xent_4096x8192": (lambda: [leaf(4096, 8192), rows(8192, 4096)], F.cross_entropy, True),
        "xent_64Kx65": (lambda: [leaf(65536, 65), rows(65, 65536)], F.cross_entropy, True),
        "nll_4096x1024": (lambda: [leaf(4096, 1024), rows(1024, 4096)], F.nll_loss, True),
        "sum_last": rowwise(lambda x: x.sum(-1)),
        "sum_dim0": rowwise(lambda x: x.sum(0)),
        "mean_last": rowwise(lambda x: x.mean(-1)),
        "mean_dim0": rowwise(lambda x: x.mean(0)),
        "amax_last": rowwise(lambda x: x.amax(-1)),
        "amax_dim0": rowwise(lambda x: x.amax(0)),
        "argmax_last": rowwise(lambda x: x.argmax(-1), False),
        "argmax_dim0": rowwise(lambda x: x.argmax(0), False),
        "var_last": rowwise(lambda x: x.var(-1)),
        "var_dim0": rowwise(lambda x: x.var(0)),
        "cumsum_last": rowwise(lambda x: x.cumsum(-1)),
        "sort_last_8192x512": (lambda: [leaf(8192, 512)], lambda x: torch.sort(x, -1)[0], True),
        "topk8_1024x4096": (lambda: [leaf(1024, 4096)], lambda x: torch.topk(x, 8, -1)[0], True),
        "embedding_50304x768": (lambda: [leaf(50304, 768), rows(50304, 8, 1024)],
                                lambda w, i: F.embedding(i, w), True),
        "dropout_p0.1": rowwise(lambda x: F.dropout(x, 0.1, training=True)),
        "where_4M": (lambda: [leaf(*ROWS), leaf(*ROWS), mask(*ROWS)],
                     lambda a, b, c: torch.where(c, a, b), True),
        "masked_fill_4M": (lambda: [leaf(*ROWS), mask(*ROWS)],
                           lambda x, m: x.masked_fill(m, 0.0), True),
        "cat8_dim1": (lambda: [leaf(2048, 256) for _ in range(8)],
                      lambda *xs: torch.cat(xs, 1), True),
        "stack8_dim0": (lambda: [leaf(512, 1024) for _ in range(8)],
                        lambda *xs: torch.stack(xs, 0), True),
        "index_select_dim0": (lambda: [leaf(8192, 512), rows(8192, 8192)],
                              lambda a, i: torch.index_select(a, 0, i), True),
        "upsample_nearest_2x": (lambda: [leaf(4, 64, 64, 64)],
                                lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), True),
        "upsample_bilinear_2x": (lambda: [leaf(4, 64, 64, 64)],
                                 lambda x: F.interpolate(x, scale_factor=2, mode="bilinear",
                                                         align_corners=False), True),
        "mse_loss_4M": (lambda: [leaf(*ROWS), leaf(*ROWS)], F.mse_loss, True),
        "clamp_4M": rowwise(lambda x: x.clamp(-0.5, 0.5)),
        "pow2_4M": rowwise(lambda x: x.pow(2)),
        "div_4M": (lambda: [leaf(*ROWS), leaf(*ROWS)], torch.div, True),
    }


run_op_cases(make_cases)
