# The driver torch_new_ops.py and torch_core_ops.py share (the PyTorch twin of op_case_bench.h):
# times each case forward and forward + backward of sum(out * g) at each thread count and prints
# "case threads fwd_ms fwdbwd_ms" lines (medians; nan where a case has no backward row).
#   <script> [reps] [threads, e.g. 1 or 1,2] [cases, e.g. copy_16M,transpose_copy_2048]
import sys

from torch_timing import bench_args, import_torch, median_ms


def run_op_cases(make_cases):
    """make_cases(torch, F) -> {name: (make inputs, fn, has backward)}."""
    reps, threads = bench_args(5, "1")
    only = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else None
    torch = import_torch()
    if torch is None:
        return
    import torch.nn.functional as F
    cases = make_cases(torch, F)
    torch.manual_seed(0)
    for name, (make, fn, has_bwd) in cases.items():
        if only is not None and name not in only:
            continue
        inputs = make()
        with torch.no_grad():
            g = torch.randn(fn(*inputs).shape)
        for t in threads:
            torch.set_num_threads(t)

            def fwd():
                with torch.no_grad():
                    fn(*inputs)

            def fwd_bwd():
                for x in inputs:
                    x.grad = None
                fn(*inputs).backward(g)

            try:
                both = median_ms(fwd_bwd, reps) if has_bwd else float("nan")
                print(f"{name} {t} {median_ms(fwd, reps):.4f} {both:.4f}", flush=True)
            except RuntimeError as e:  # an op or backward torch 1.13 does not have on the CPU
                print(f"# {name}: {e}", flush=True)
        del inputs, g
