# What the PyTorch sides of the benchmarks share (the C++ side's twin is tools/bench/torch_rows.h):
# the median timer, the "reps threads" arguments the C++ side passes, and the torch import whose
# "torch: ..." line the C++ side reads.
import sys
import time


def median_ms(fn, reps):
    for _ in range(2):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1e3


def bench_args(default_reps, default_threads="1,2"):
    """argv's reps and comma-separated thread counts, as torch_rows.h passes them."""
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else default_reps
    threads = [int(t) for t in (sys.argv[2] if len(sys.argv) > 2 else default_threads).split(",")]
    return reps, threads


def import_torch():
    """torch after printing "torch: <version>", or None after printing why it is not available."""
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"torch: not available ({type(e).__name__}: {e})")
        return None
    print(f"torch: {torch.__version__}")
    return torch
