# PyTorch's side of bench_pool: the same poolings on the same shapes, printed as
# "case threads fwd_ms fwdbwd_ms" lines (medians).
from torch_timing import bench_args, import_torch, median_ms


def main():
    reps, threads = bench_args(11)
    torch = import_torch()
    if torch is None:
        return
    import torch.nn.functional as F

    torch.manual_seed(0)
    max2 = lambda x: F.max_pool2d(x, 2)  # noqa: E731
    cases = {
        "max2x2_32x32": ((64, 32, 32, 32), torch.float32, max2),
        "max2x2_16x16": ((64, 64, 16, 16), torch.float32, max2),
        "max2x2_bf16": ((64, 32, 32, 32), torch.bfloat16, max2),
        "max3x3s2p1": ((32, 64, 56, 56), torch.float32, lambda x: F.max_pool2d(x, 3, 2, 1)),
        "avg2x2_32x32": ((64, 32, 32, 32), torch.float32, lambda x: F.avg_pool2d(x, 2)),
    }
    for name, (shape, dtype, fn) in cases.items():
        x = torch.randn(*shape).to(dtype).requires_grad_(True)
        with torch.no_grad():
            g = torch.randn(fn(x).shape).to(dtype)
        for t in threads:
            torch.set_num_threads(t)

            def fwd():
                with torch.no_grad():
                    fn(x)

            def fwd_bwd():
                x.grad = None
                fn(x).backward(g)

            try:
                print(f"{name} {t} {median_ms(fwd, reps):.4f} {median_ms(fwd_bwd, reps):.4f}", flush=True)
            except RuntimeError as e:  # e.g. a dtype torch 1.13 has no CPU kernel for
                print(f"# {name}: {e}", flush=True)


main()
