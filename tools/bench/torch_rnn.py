# PyTorch's side of bench_rnn: nn.LSTM / nn.GRU on the same shapes, printed as
# "case threads fwd_ms fwdbwd_ms" lines (medians).
from torch_timing import bench_args, import_torch, median_ms


def main():
    reps, threads = bench_args(7)
    torch = import_torch()
    if torch is None:
        return
    import torch.nn as nn

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
