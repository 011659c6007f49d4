# PyTorch's side of bench_train: trains one model on random data and prints one line
#   result <steps/s> <rss before training, KiB> <peak rss, KiB>
# (steps/s over --steps steps after --warmup steps). The models are the ones fabric trains in the
# same run: the MLP 784-1024-1024-10 and the CNN with BatchNorm with SGD momentum, and nanoGPT's
# GPT with AdamW.
# bench_train runs it under tools/bench/torch_env.sh (OpenBLAS with the kernel set for this CPU) and GLIBC_TUNABLES.
import argparse
import math
import resource
import time


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["mlp", "cnn", "gpt"], required=True)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"torch: not available ({type(e).__name__}: {e})")
        return
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    if a.model == "mlp":
        model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                              nn.Linear(1024, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.randn(256, 784), torch.randint(0, 10, (256,))

        def loss_fn():
            return F.cross_entropy(model(x), y)
    elif a.model == "cnn":
        # fabric's nn::CNN with batch_norm: Conv·BN·ReLU·Pool twice, then a linear classifier.
        model = nn.Sequential(nn.Conv2d(3, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(64 * 8 * 8, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))

        def loss_fn():
            return F.cross_entropy(model(x), y)
    else:
        C, H, L, T, B, V = 256, 4, 4, 128, 16, 65  # V: a character vocabulary (nanoGPT shakespeare_char)

        class Attn(nn.Module):
            def __init__(self):
                super().__init__()
                self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
                self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)), persistent=False)

            def forward(self, x):
                b, t, c = x.shape
                q, k, v = self.c_attn(x).split(C, dim=2)
                q, k, v = (z.view(b, t, H, c // H).transpose(1, 2) for z in (q, k, v))
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                att = F.softmax(att.masked_fill(~self.mask[:t, :t], float("-inf")), dim=-1)
                return self.c_proj((att @ v).transpose(1, 2).contiguous().view(b, t, c))

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(C), Attn(), nn.LayerNorm(C)
                self.c_fc, self.c_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

            def forward(self, x):
                x = x + self.attn(self.ln_1(x))
                return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

        class GPT(nn.Module):
            def __init__(self):
                super().__init__()
                self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
                self.h = nn.ModuleList(Block() for _ in range(L))
                self.ln_f, self.lm_head = nn.LayerNorm(C), nn.Linear(C, V, bias=False)
                self.wte.weight = self.lm_head.weight

            def forward(self, idx, targets):
                x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
                for blk in self.h:
                    x = blk(x)
                logits = self.lm_head(self.ln_f(x))
                return F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1)

        model = GPT()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
        x, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))

        def loss_fn():
            if a.dtype == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return model(x, y)
            return model(x, y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        return loss

    before = rss_kib()
    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    loss.item()
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"result {a.steps / secs:.4f} {before} {peak}", flush=True)


if __name__ == "__main__":
    main()
