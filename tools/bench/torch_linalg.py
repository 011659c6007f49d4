# PyTorch's side of bench_linalg: torch.linalg's inv, det, solve, cholesky, qr, eigh, svd, lstsq and
# pinv on the same matrices (built from the same Weyl sequence as bench_linalg.cpp), forward and
# forward + backward of the same losses, with the same adaptive repeat rule. Prints a "blas: ..."
# line (the BLAS and LAPACK libraries this process mapped) and "case threads fwd_ms fwdbwd_ms"
# rows; -1 marks a skipped measurement (its first call took longer than the cap).
#   torch_linalg.py budget_s cap_s max_reps threads ops dtypes sizes   (comma-separated lists)
import os
import sys
import time

from torch_timing import import_torch

SIZES = {"8": (8, 4096), "64": (64, 256), "256": (256, 1), "1024": (1024, 1)}
K_RHS = 16


def weyl_uniform(count, offset):
    """u_i in [-1, 1) for i = offset + 1 .. offset + count, as bench_linalg.cpp's weyl_uniform."""
    import numpy as np

    i = np.arange(offset + 1, offset + count + 1, dtype=np.uint64)
    u = (i * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)
    return (u.astype(np.int64) - (1 << 52)).astype(np.float64) / 4503599627370496.0


def inputs(torch, n, batch, dtype):
    """(A, S, B): A = I + 0.25 G / sqrt(n) (G of unit variance: singular values within [0.5, 1.5]),
    S = A A^T (symmetric positive-definite), B (batch, n, 16); built in float64, then cast."""
    import numpy as np

    g = weyl_uniform(batch * n * n, 0).reshape(batch, n, n) * np.sqrt(3.0)
    a = np.eye(n) + 0.25 / np.sqrt(n) * g
    s = a @ np.swapaxes(a, -1, -2)
    s = 0.5 * (s + np.swapaxes(s, -1, -2))
    b = weyl_uniform(batch * n * K_RHS, 1 << 40).reshape(batch, n, K_RHS)
    squeeze = batch == 1

    def t(x):
        x = torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
        return x[0].contiguous() if squeeze else x

    return t(a), t(s), t(b)


def cases(torch):
    """name -> (uses the SPD matrix, forward(A, B) -> outputs, loss(outputs) -> scalar)."""
    la = torch.linalg
    return {
        "inv": (False, lambda a, b: la.inv(a), lambda o: o.sum()),
        "det": (False, lambda a, b: la.det(a), lambda o: o.sum()),
        "solve": (False, lambda a, b: la.solve(a, b), lambda o: o.sum()),
        "cholesky": (True, lambda a, b: la.cholesky(a), lambda o: o.sum()),
        "qr": (False, lambda a, b: la.qr(a), lambda o: o[0].sum() + o[1].sum()),
        # Eigenvectors and singular vectors are defined up to sign: |.| is invariant to it.
        "eigh": (True, lambda a, b: la.eigh(a), lambda o: o[0].sum() + o[1].abs().sum()),
        "svd": (False, lambda a, b: la.svd(a),
                lambda o: o[1].sum() + o[0].abs().sum() + o[2].abs().sum()),
        "lstsq": (False, lambda a, b: la.lstsq(a, b).solution, lambda o: o.sum()),
        "pinv": (False, lambda a, b: la.pinv(a), lambda o: o.sum()),
    }


def timed(fn, budget, cap, max_reps):
    """Median ms of fn's calls after one warm-up call: as many as fit in budget seconds (3 at
    least, max_reps at most); -1 when the warm-up call took longer than cap seconds."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first > cap:
        return -1.0
    reps = max(3, min(max_reps, int(budget / max(first, 1e-9))))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1e3


def mapped_blas_lapack():
    """The BLAS and LAPACK shared objects this process mapped (torch's: Debian links the generic
    libblas.so.3 / liblapack.so.3, which torch_env.sh points at OpenBLAS), as folder/file, and
    OpenBLAS's own configuration line when it is one of them."""
    import ctypes

    libs, config = set(), ""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                path = fields[5] if len(fields) >= 6 else ""
                name = os.path.basename(path)
                if not any(k in name for k in ("blas", "lapack", "mkl")):
                    continue
                libs.add(os.path.join(os.path.basename(os.path.dirname(path)), name))
                if "openblas" in name and not config:
                    try:
                        get = ctypes.CDLL(path).openblas_get_config
                        get.restype = ctypes.c_char_p
                        config = get().decode()
                    except (OSError, AttributeError):
                        pass
    except OSError:
        pass
    text = ", ".join(sorted(libs)) or "none mapped"
    return f"{text} ({config})" if config else text


def main():
    budget, cap, max_reps = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    threads = [int(t) for t in sys.argv[4].split(",")]
    ops, dtypes, sizes = (sys.argv[i].split(",") for i in (5, 6, 7))
    torch = import_torch()
    if torch is None:
        return
    print(f"blas: {mapped_blas_lapack()}", flush=True)
    all_cases = cases(torch)
    for dt in dtypes:
        dtype = torch.float32 if dt == "f32" else torch.float64
        for size in sizes:
            n, batch = SIZES[size]
            A, S, B = inputs(torch, n, batch, dtype)
            for op in ops:
                spd, forward, loss = all_cases[op]
                M = (S if spd else A).clone().requires_grad_(True)
                for t in threads:
                    torch.set_num_threads(t)

                    def fwd():
                        with torch.no_grad():
                            forward(M, B)

                    def fwd_bwd():
                        M.grad = None
                        loss(forward(M, B)).backward()

                    f = timed(fwd, budget, cap, max_reps)
                    fb = timed(fwd_bwd, budget, cap, max_reps) if f >= 0 else -1.0
                    print(f"{op}_{dt}_{size} {t} {f:.4f} {fb:.4f}", flush=True)


main()
