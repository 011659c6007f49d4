#!/usr/bin/python3
# PyTorch peer of tools/bench/bench_gemm.cpp: median GFLOP/s of torch.matmul on square matrices,
# one line per measurement, read back by the C++ benchmark. Run with /usr/bin/python3 (Debian's
# python3-torch); prints "torch: not installed" when torch cannot be imported.
import argparse
import os
import statistics
import sys
import time


def loaded_blas():
    """The BLAS/oneDNN libraries actually mapped into this process."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                name = path.rsplit("/", 1)[-1]
                if any(k in name for k in ("blas", "dnnl", "mkl")):
                    libs.add(path)
    except OSError:
        pass
    return sorted(libs)


def openblas_core(libs):
    """OpenBLAS's chosen kernel set (DYNAMIC_ARCH builds pick one at load time), if loaded."""
    import ctypes
    for path in libs:
        if "openblas" in path.rsplit("/", 1)[-1]:
            try:
                f = ctypes.CDLL(path).openblas_get_corename
                f.restype = ctypes.c_char_p
                return f().decode()
            except (OSError, AttributeError):
                return None
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,512,1024,2048")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtypes", default="f32,bf16,f64")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.05, help="seconds per sample")
    args = ap.parse_args()
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "no peer"
        print(f"torch: not installed ({type(e).__name__}: {e})")
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    threads = [int(t) for t in args.threads.split(",") if t]
    dtypes = {"f32": torch.float32, "bf16": torch.bfloat16, "f64": torch.float64}
    torch.manual_seed(0)
    # Touch the BLAS once so that /proc/self/maps shows what float32 matmul really uses.
    torch.matmul(torch.ones(64, 64), torch.ones(64, 64))
    print(f"torch: {torch.__version__}")
    blas = loaded_blas()
    core = openblas_core(blas)
    print("torch_blas: " + (" ".join(blas) if blas else "unknown") +
          (f" (OpenBLAS core: {core}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})"
           if core else ""))
    sys.stdout.flush()
    for nt in threads:
        torch.set_num_threads(nt)
        for name in args.dtypes.split(","):
            dt = dtypes[name]
            for n in sizes:
                a = torch.randn(n, n).to(dt)
                b = torch.randn(n, n).to(dt)
                out = torch.empty(n, n, dtype=dt)
                flop = 2.0 * n * n * n
                for _ in range(2):  # warm-up (oneDNN JIT, BLAS buffers)
                    torch.matmul(a, b, out=out)
                # Calls per sample so that a sample lasts about min_time.
                t0 = time.perf_counter()
                torch.matmul(a, b, out=out)
                once = max(time.perf_counter() - t0, 1e-6)
                iters = max(1, int(args.min_time / once))
                rates = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    for _ in range(iters):
                        torch.matmul(a, b, out=out)
                    dt_s = time.perf_counter() - t0
                    rates.append(flop * iters / dt_s / 1e9)
                print(f"torch_gemm {name} {n} {nt} {statistics.median(rates):.3f}")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
