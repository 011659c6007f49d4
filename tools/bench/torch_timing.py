# The timer the PyTorch sides of bench_norm and bench_pool share (the C++ side's twin is
# tools/bench/torch_rows.h): the median of `reps` timed calls after two warm-up calls, in ms.
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
