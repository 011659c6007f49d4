#!/usr/bin/python3
# PyTorch peer of tools/bench/bench_gemm.cpp: GFLOP/s of torch.matmul on square matrices. Run with
# /usr/bin/python3 (Debian's python3-torch); prints "torch: not installed" when torch cannot be
# imported. Two modes:
#   batch (default): one "torch_gemm <dtype> <n> <threads> <median GFLOP/s>" line per measurement;
#   --serve: answers "sample <dtype> <n> <threads> <seconds>" lines on stdin with one
#            "gflops <value>" sample each, so the C++ benchmark can interleave torch's samples
#            with its own (the same load for both on a shared machine).
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


class Case:
    """One (dtype, n) problem with its tensors, warmed up, and the calls that fill a sample."""

    def __init__(self, torch, dt, n, min_time):
        self.torch = torch
        self.a = torch.randn(n, n).to(dt)
        self.b = torch.randn(n, n).to(dt)
        self.out = torch.empty(n, n, dtype=dt)
        self.flop = 2.0 * n * n * n
        self.min_time = min_time
        self.iters = {}  # per thread count

    def _call(self):
        self.torch.matmul(self.a, self.b, out=self.out)

    def sample(self, nt, min_time=None):
        min_time = self.min_time if min_time is None else min_time
        if nt not in self.iters:
            for _ in range(2):  # warm-up (oneDNN JIT, BLAS buffers)
                self._call()
            t0 = time.perf_counter()
            self._call()
            once = max(time.perf_counter() - t0, 1e-6)
            self.iters[nt] = max(1, int(min_time / once))
        iters = self.iters[nt]
        t0 = time.perf_counter()
        for _ in range(iters):
            self._call()
        return self.flop * iters / (time.perf_counter() - t0) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,512,1024,2048")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtypes", default="f32,bf16,f64")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.05, help="seconds per sample")
    ap.add_argument("--serve", action="store_true", help="answer sample requests on stdin")
    args = ap.parse_args()
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "no peer"
        print(f"torch: not installed ({type(e).__name__}: {e})", flush=True)
        return 0

    dtypes = {"f32": torch.float32, "bf16": torch.bfloat16, "f64": torch.float64}
    torch.manual_seed(0)
    # Touch the BLAS once so that /proc/self/maps shows what float32 matmul really uses.
    torch.matmul(torch.ones(64, 64), torch.ones(64, 64))
    print(f"torch: {torch.__version__}")
    blas = loaded_blas()
    core = openblas_core(blas)
    coretype = os.environ.get("OPENBLAS_CORETYPE", "unset")
    print("torch_blas: " + (" ".join(blas) if blas else "unknown") +
          (f" (OpenBLAS core: {core}, OPENBLAS_CORETYPE={coretype})" if core else ""))
    sys.stdout.flush()

    cases = {}

    def case(name, n):
        if (name, n) not in cases:
            cases[(name, n)] = Case(torch, dtypes[name], n, args.min_time)
        return cases[(name, n)]

    if args.serve:
        print("ready", flush=True)
        for line in sys.stdin:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "quit":
                break
            try:
                if parts[0] != "sample" or len(parts) != 5 or parts[1] not in dtypes:
                    raise ValueError(f"bad request {line.strip()!r}")
                name, n, nt, secs = parts[1], int(parts[2]), int(parts[3]), float(parts[4])
                torch.set_num_threads(nt)
                print(f"gflops {case(name, n).sample(nt, secs):.3f}", flush=True)
            except Exception as e:  # noqa: BLE001 - report and keep serving
                print(f"error {type(e).__name__}: {e}", flush=True)
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    threads = [int(t) for t in args.threads.split(",") if t]
    for nt in threads:
        torch.set_num_threads(nt)
        for name in args.dtypes.split(","):
            for n in sizes:
                c = case(name, n)
                rates = [c.sample(nt) for _ in range(args.runs)]
                print(f"torch_gemm {name} {n} {nt} {statistics.median(rates):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
