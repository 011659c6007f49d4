# PyTorch's side of bench_attention: causal attention written the way PyTorch 1.13 (which has no
# F.scaled_dot_product_attention) and nanoGPT's fallback write it, timed forward-only and
# forward+backward on the same shapes. Prints "B H T hs dtype fwd_ms fwdbwd_ms" lines.
import math
import sys

from torch_timing import median_ms


def main():
    shapes = [tuple(int(x) for x in s.split("x")) for s in sys.argv[1].split(",")]
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"torch: not available ({type(e).__name__}: {e})")
        return
    torch.set_num_threads(threads)
    print(f"torch: {torch.__version__}, {torch.get_num_threads()} threads")

    for (B, H, T, hs) in shapes:
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        for name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
            q, k, v = (torch.randn(B, H, T, hs).to(dt).requires_grad_() for _ in range(3))
            g = torch.randn(B, H, T, hs).to(dt)

            def attend():
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
                att = att.masked_fill(~mask, float("-inf")).softmax(-1)
                return att @ v

            def forward():
                with torch.no_grad():
                    attend()

            def forward_backward():
                attend().backward(g)

            print(f"{B} {H} {T} {hs} {name} {median_ms(forward, reps):.4f} {median_ms(forward_backward, reps):.4f}",
                  flush=True)


main()
