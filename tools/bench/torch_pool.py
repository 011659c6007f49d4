# PyTorch's side of bench_pool: the same poolings on the same shapes, printed as
# "case threads fwd_ms fwdbwd_ms" lines (medians).
import sys

from torch_timing import median_ms


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    threads = [int(t) for t in (sys.argv[2] if len(sys.argv) > 2 else "1,2").split(",")]
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"torch: not available ({type(e).__name__}: {e})")
        return
    print(f"torch: {torch.__version__}")

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
