# PyTorch's side of bench_optim: one AdamW step on n float32 parameters with the for-loop
# (foreach=False) and the multi-tensor (foreach=True) implementations, and one RMSprop and one
# Adagrad step (torch's defaults) with the for-loop, printed as "<optimizer> <impl> <threads>
# <seconds>" lines (median of reps after 2 warm-up steps).
import sys
import time


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    threads = [int(t) for t in (sys.argv[3] if len(sys.argv) > 3 else "1,2").split(",")]
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"torch: not available ({type(e).__name__}: {e})")
        return
    print(f"torch: {torch.__version__}")
    runs = [("adamw", lambda ps, fe: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2, foreach=fe), (False, True)),
            ("rmsprop", lambda ps, fe: torch.optim.RMSprop(ps, foreach=fe), (False,)),
            ("adagrad", lambda ps, fe: torch.optim.Adagrad(ps, foreach=fe), (False,))]
    for t in threads:
        torch.set_num_threads(t)
        for name, make, impls in runs:
            for foreach in impls:
                p = torch.nn.Parameter(torch.randn(n))
                p.grad = torch.randn(n) * 1e-3
                opt = make([p], foreach)
                for _ in range(2):
                    opt.step()
                ts = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    opt.step()
                    ts.append(time.perf_counter() - t0)
                ts.sort()
                print(f"{name} foreach={foreach} {t} {ts[len(ts) // 2]:.6f}", flush=True)


if __name__ == "__main__":
    main()
