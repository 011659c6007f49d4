# PyTorch's side of bench_elementwise: the same ops on the same sizes, printed as
# "op dtype threads alloc_gbps out_gbps" lines (GB/s counting bytes read + written).
#   torch_elementwise.py [n] [reps] [threads, e.g. 1,2] [ops: comma-separated row names; all]
import sys
import time


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16 * 1024 * 1024
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    threads = [int(t) for t in (sys.argv[3] if len(sys.argv) > 3 else "1,2").split(",")]
    only = set(sys.argv[4].split(",")) if len(sys.argv) > 4 else None  # row names; all if absent
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"torch: not available ({type(e).__name__}: {e})")
        return
    print(f"torch: {torch.__version__}")

    # bench_elementwise times each op in rounds: the op, the op into a preallocated output, then
    # two copies of half the op's bytes (memcpy and the streaming copy), so the op's operands are
    # not cache-hot when it runs. The same rounds run here, so both sides run in the same state.
    # Returns the median seconds of (alloc, out); out is None when it raises (no out= variant).
    def median_times(alloc, out, nbytes):
        src = torch.ones(nbytes // 2, dtype=torch.uint8)
        dst = torch.empty_like(src)
        try:
            out()
        except Exception:  # noqa: BLE001 - an op without out= in this version
            out = None
        for _ in range(2):
            alloc()
            if out:
                out()
        ta, to = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            alloc()
            ta.append(time.perf_counter() - t0)
            if out:
                t0 = time.perf_counter()
                out()
                to.append(time.perf_counter() - t0)
            dst.copy_(src)
            dst.copy_(src)
        ta.sort()
        to.sort()
        return ta[len(ta) // 2], (to[len(to) // 2] if out else None)

    for dt_name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a = torch.randn(n).to(dt)
        b = torch.randn(n).to(dt)
        c = torch.empty(n, dtype=dt)
        item = a.element_size()
        ops = {
            # name: (streams, allocating call, out= call)
            "add": (3, lambda: a + b, lambda: torch.add(a, b, out=c)),
            "mul_scalar": (2, lambda: a * 2.5, lambda: torch.mul(a, 2.5, out=c)),
            "gelu": (2, lambda: F.gelu(a), lambda: torch._C._nn.gelu(a, out=c)),
            "gelu_tanh": (2, lambda: F.gelu(a, approximate="tanh"),
                          lambda: torch._C._nn.gelu(a, approximate="tanh", out=c)),
            # autograd's GeluBackward: grad b at saved input a.
            "gelu_backward": (3, lambda: torch.ops.aten.gelu_backward(b, a),
                              lambda: torch.ops.aten.gelu_backward.grad_input(b, a, grad_input=c)),
            "gelu_tanh_backward": (
                3, lambda: torch.ops.aten.gelu_backward(b, a, approximate="tanh"),
                lambda: torch.ops.aten.gelu_backward.grad_input(b, a, approximate="tanh",
                                                                grad_input=c)),
            "exp": (2, lambda: torch.exp(a), lambda: torch.exp(a, out=c)),
            "log": (2, lambda: torch.log(a), lambda: torch.log(a, out=c)),
            "log1p": (2, lambda: torch.log1p(a), lambda: torch.log1p(a, out=c)),
            "erf": (2, lambda: torch.erf(a), lambda: torch.erf(a, out=c)),
            "tanh": (2, lambda: torch.tanh(a), lambda: torch.tanh(a, out=c)),
            "sin": (2, lambda: torch.sin(a), lambda: torch.sin(a, out=c)),
            "cos": (2, lambda: torch.cos(a), lambda: torch.cos(a, out=c)),
            "expm1": (2, lambda: torch.expm1(a), lambda: torch.expm1(a, out=c)),
            "tan": (2, lambda: torch.tan(a), lambda: torch.tan(a, out=c)),
            "asin": (2, lambda: torch.asin(a), lambda: torch.asin(a, out=c)),
            "acos": (2, lambda: torch.acos(a), lambda: torch.acos(a, out=c)),
            "atan": (2, lambda: torch.atan(a), lambda: torch.atan(a, out=c)),
            "log2": (2, lambda: torch.log2(a), lambda: torch.log2(a, out=c)),
            "log10": (2, lambda: torch.log10(a), lambda: torch.log10(a, out=c)),
            "sinh": (2, lambda: torch.sinh(a), lambda: torch.sinh(a, out=c)),
            "cosh": (2, lambda: torch.cosh(a), lambda: torch.cosh(a, out=c)),
            "relu": (2, lambda: torch.relu(a), lambda: torch.clamp_min(a, 0, out=c)),
            "leaky_relu": (2, lambda: F.leaky_relu(a), lambda: torch._C._nn.leaky_relu(a, 0.01, out=c)),
            "elu": (2, lambda: F.elu(a), lambda: torch._C._nn.elu(a, out=c)),
            "softplus": (2, lambda: F.softplus(a), lambda: torch._C._nn.softplus(a, 1, 20, out=c)),
            "mish": (2, lambda: F.mish(a), lambda: torch._C._nn.mish(a, out=c)),
            "hardswish": (2, lambda: F.hardswish(a), lambda: torch._C._nn.hardswish(a, out=c)),
        }
        for t in threads:
            torch.set_num_threads(t)
            for name, (streams, alloc, out) in ops.items():
                if only is not None and name not in only:
                    continue
                nbytes = streams * n * item
                try:
                    t_alloc, t_out = median_times(alloc, out, nbytes)
                except Exception:  # noqa: BLE001 - no kernel for this dtype (1.13: bf16 mish)
                    continue
                ga = nbytes / t_alloc / 1e9
                go = nbytes / t_out / 1e9 if t_out else float("nan")
                print(f"{name} {dt_name} {t} {ga:.3f} {go:.3f}", flush=True)

    # bench_elementwise's mixed-dtype rows: f32 with bf16 (4 + 2 bytes read, 4 written).
    a = torch.randn(n)
    b = torch.randn(n).to(torch.bfloat16)
    acc = torch.randn(n)
    c = torch.empty(n)
    mixed = {
        "add_f32_bf16": (lambda: a + b, lambda: torch.add(a, b, out=c)),
        "add_inplace_f32_bf16": (lambda: acc.add_(b), None),  # no out= form: None is skipped
    }
    for t in threads:
        torch.set_num_threads(t)
        for name, (alloc, out) in mixed.items():
            if only is not None and name not in only:
                continue
            t_alloc, t_out = median_times(alloc, out, 10 * n)
            go = 10 * n / t_out / 1e9 if t_out else float("nan")
            print(f"{name} f32+bf16 {t} {10 * n / t_alloc / 1e9:.3f} {go:.3f}", flush=True)


if __name__ == "__main__":
    main()
