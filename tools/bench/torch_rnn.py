# PyTorch's side of bench_rnn: nn.LSTM / nn.GRU on the same shapes, printed as
# "case threads fwd_ms fwdbwd_ms" lines (medians).
import sys

from torch_timing import median_ms


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    threads = [int(t) for t in (sys.argv[2] if len(sys.argv) > 2 else "1,2").split(",")]
    try:
        import torch
        import torch.nn as nn
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"torch: not available ({type(e).__name__}: {e})")
        return
    print(f"torch: {torch.__version__}")

    torch.manual_seed(0)
    cases = {
        "lstm_L64_N32_H256": ((64, 32, 256), nn.LSTM(256, 256, num_layers=2)),
        "gru_L64_N32_H256": ((64, 32, 256), nn.GRU(256, 256, num_layers=2)),
        "lstm_L128_N8_H128": ((128, 8, 128), nn.LSTM(128, 128, num_layers=2)),
    }
    for name, (shape, layer) in cases.items():
        x = torch.randn(*shape).requires_grad_(True)
        with torch.no_grad():
            g = torch.randn(layer(x)[0].shape)
        for t in threads:
            torch.set_num_threads(t)

            def fwd():
                with torch.no_grad():
                    layer(x)

            def fwd_bwd():
                x.grad = None
                layer.zero_grad()
                layer(x)[0].backward(g)

            print(f"{name} {t} {median_ms(fwd, reps):.4f} {median_ms(fwd_bwd, reps):.4f}", flush=True)


main()
