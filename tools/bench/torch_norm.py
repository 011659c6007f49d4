# PyTorch's side of bench_norm: the same normalisations on the same shapes, printed as
# "case threads fwd_ms fwdbwd_ms" lines (medians).
from torch_timing import bench_args, import_torch, median_ms


def main():
    reps, threads = bench_args(7)
    torch = import_torch()
    if torch is None:
        return
    import torch.nn.functional as F

    torch.manual_seed(0)
    cases = {
        "batch_norm2d": ((32, 64, 56, 56), 64,
                         lambda x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)),
        "batch_norm1d": ((4096, 1024), 1024,
                         lambda x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)),
        "group_norm": ((32, 64, 56, 56), 64, lambda x, w, b, rm, rv: F.group_norm(x, 32, w, b, 1e-5)),
        "layer_norm": ((4096, 1024), 1024, lambda x, w, b, rm, rv: F.layer_norm(x, (1024,), w, b, 1e-5)),
    }
    for name, (shape, c, fn) in cases.items():
        x = torch.randn(*shape, requires_grad=True)
        w = torch.randn(c, requires_grad=True)
        b = torch.randn(c, requires_grad=True)
        rm, rv = torch.zeros(c), torch.ones(c)
        g = torch.randn(*shape)
        for t in threads:
            torch.set_num_threads(t)
            fwd = median_ms(lambda: fn(x.detach(), w.detach(), b.detach(), rm, rv), reps)

            def fwd_bwd():
                x.grad = w.grad = b.grad = None
                fn(x, w, b, rm, rv).backward(g)

            print(f"{name} {t} {fwd:.4f} {median_ms(fwd_bwd, reps):.4f}")


main()
