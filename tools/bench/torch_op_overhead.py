# The PyTorch twin of bench_op_overhead.cpp: per-call µs of tiny ops (forward without grad,
# forward recording the graph, forward + backward), printed as "case nograd rec fb" lines.
#   <script> [reps] [cases, e.g. add_64,matmul_8x8]
import sys
import time


def us_per_call(fn, reps):
    for _ in range(10):
        fn()
    t0 = time.perf_counter()
    for _ in range(10):
        fn()
    one = (time.perf_counter() - t0) / 10
    calls = min(max(int(0.02 / max(one, 1e-9)), 10), 200000)
    us = []
    for _ in range(reps):
        s = time.perf_counter()
        for _ in range(calls):
            fn()
        us.append((time.perf_counter() - s) / calls * 1e6)
    us.sort()
    return us[len(us) // 2]


def make_cases(torch, F):
    def leaf(*shape):
        return torch.randn(*shape).requires_grad_(True)

    cases = {}
    for r, c in ((1, 1), (8, 8), (64, 64)):
        n = str(r * c)

        def one(r=r, c=c):
            return [leaf(r, c)]

        def two(r=r, c=c):
            return [leaf(r, c), leaf(r, c)]

        def with_target(r=r, c=c):
            return [leaf(r, c), torch.randint(0, c, (r,))]

        cases["add_" + n] = (two, lambda a, b: torch.add(a, b))
        cases["mul_scalar_" + n] = (one, lambda a: torch.mul(a, 2.0))
        cases["relu_" + n] = (one, lambda a: torch.relu(a))
        cases["sum_" + n] = (one, lambda a: torch.sum(a))
        cases["reshape_" + n] = (one, lambda a: a.reshape(-1))
        cases["transpose_contig_" + n] = (one, lambda a: a.transpose(0, 1).contiguous())
        cases["index_select_" + n] = (lambda r=r, c=c: [leaf(r, c), torch.randint(0, r, (r,))],
                                      lambda a, i: torch.index_select(a, 0, i))
        cases["cat2_" + n] = (two, lambda a, b: torch.cat([a, b], 0))
        cases["nll_loss_" + n] = (with_target, lambda a, t: F.nll_loss(a, t))
        cases["cross_entropy_" + n] = (with_target, lambda a, t: F.cross_entropy(a, t))
        cases["layer_norm_" + n] = (lambda r=r, c=c: [leaf(r, c), leaf(c), leaf(c)],
                                    lambda x, w, b, c=c: F.layer_norm(x, (c,), w, b))
        cases["softmax_" + n] = (one, lambda a: torch.softmax(a, -1))
    cases["matmul_8x8"] = (lambda: [leaf(8, 8), leaf(8, 8)], lambda a, b: torch.matmul(a, b))
    return cases


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    only = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else None
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"torch: not available ({type(e).__name__}: {e})")
        return
    print(f"torch: {torch.__version__}, {torch.get_num_threads()} thread(s)")
    torch.manual_seed(0)
    for name, (make, fn) in make_cases(torch, F).items():
        if only is not None and name not in only:
            continue
        inputs = make()
        with torch.no_grad():
            g = torch.randn(fn(*inputs).shape)

        def nograd():
            with torch.no_grad():
                fn(*inputs)

        def rec():
            fn(*inputs)

        def fb():
            for x in inputs:
                x.grad = None
            fn(*inputs).backward(g)

        print(f"{name} {us_per_call(nograd, reps):.3f} {us_per_call(rec, reps):.3f} "
              f"{us_per_call(fb, reps):.3f}", flush=True)


main()
