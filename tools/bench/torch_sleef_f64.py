# PyTorch's side of bench_sleef_f64: the same float64 ops on the same inputs at one thread,
# printed as "op ms" lines (median milliseconds per call).
#   torch_sleef_f64.py [n] [reps] [ops: comma-separated; all if absent]
import sys
import time


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 20
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 21
    only = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else None
    try:
        import numpy as np
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"torch: not available ({type(e).__name__}: {e})")
        return
    print(f"torch: {torch.__version__}")
    torch.set_num_threads(1)
    F = torch.nn.functional
    cases = [("exp", 8, False, torch.exp), ("log", 1000, True, torch.log),
             ("log2", 1000, True, torch.log2), ("log10", 1000, True, torch.log10),
             ("log1p", 1000, True, torch.log1p), ("expm1", 8, False, torch.expm1),
             ("tanh", 8, False, torch.tanh), ("sinh", 8, False, torch.sinh),
             ("cosh", 8, False, torch.cosh), ("sin", 10, False, torch.sin),
             ("cos", 10, False, torch.cos), ("tan", 10, False, torch.tan),
             ("asin", 1, False, torch.asin), ("acos", 1, False, torch.acos),
             ("atan", 8, False, torch.atan), ("erf", 8, False, torch.erf),
             ("sigmoid", 8, False, torch.sigmoid), ("silu", 8, False, F.silu)]
    i = np.arange(n, dtype=np.uint64) + np.uint64(1)
    u = (i * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)
    base = (u.astype(np.int64) - (1 << 52)).astype(np.float64)
    for name, r, absolute, f in cases:
        if only and name not in only:
            continue
        x = base * (r / 4503599627370496.0)
        x = torch.from_numpy(np.abs(x) if absolute else x)
        f(x)
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f(x)
            t.append(time.perf_counter() - t0)
        t.sort()
        print(f"{name} {t[len(t) // 2] * 1e3:.4f}")


if __name__ == "__main__":
    main()
