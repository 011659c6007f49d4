# PyTorch's side of bench_ddp: DDP (gloo) over 2 processes x 1 thread training the MLP
# 784-1024-1024-10 with SGD momentum on random data, batch --batch per process. Rank 0 prints
#   result <steps/s>
# (over --steps steps after --warmup steps, between barriers). bench_ddp runs it under
# tools/bench/torch_env.sh (OpenBLAS) and GLIBC_TUNABLES, as bench_train does.
import argparse
import os
import socket
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, world, port, a):
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = DDP(nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                              nn.Linear(1024, 10)))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(rank)
    x, y = torch.randn(a.batch, 784, generator=g), torch.randint(0, 10, (a.batch,), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        print(f"result {a.steps / dt:.4f}", flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--nprocs", type=int, default=2)
    a = ap.parse_args()
    try:
        import torch.multiprocessing as mp
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        print(f"torch: not available ({type(e).__name__}: {e})")
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(worker, args=(a.nprocs, free_port(), a), nprocs=a.nprocs, join=True)


if __name__ == "__main__":
    main()
