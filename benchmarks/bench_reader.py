"""Store reader throughput ÷ the rows per second an SAE training step consumes; and the cost of checksums.

Goal (issue 3): >= 1, so loading never starves training. Goal (issue 18): checking every shard's checksum
(XXH3-128, ``disk.FAST``) on a process's first read costs under 10% of a full read pass (one shuffled epoch of
``batches``), measured as the median of paired ratios: a pass with the checks still to do against the pass right
after it (same files, same page cache). The consumer anchor is a dense TopK
SAE training step (forward, top-k, decode, MSE, backward, Adam) at the shape issue 4 names:
d_in 384, d_sae 16,384, k 32, batch 4,096, measured in this process. The store is written with
the real StoreWriter (values are random: throughput does not depend on them).

    python benchmarks/bench_reader.py [--rows 131072] [--buffer-shards 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_line  # noqa: E402

from mmfeatures.activations.store import ActivationStore, StoreConfig, StoreWriter  # noqa: E402
from mmfeatures.disk import forget_checks  # noqa: E402


def write_store(root: Path, rows: int, d: int, shard_rows: int) -> ActivationStore:
    n_shards = rows // shard_rows
    cfg = StoreConfig("bench:random", "random", "text.layer.0.resid", "none", None, False, "fp32", "fp32", "random",
                      n_shards, tuple(range(n_shards)))
    writer = StoreWriter(root, cfg)
    writer.start([{"id": str(i), "modality": "text", "concept": None, "language": None, "source": None}
                  for i in range(n_shards)])
    g = torch.Generator().manual_seed(0)
    for s in range(n_shards):
        acts = torch.randn(shard_rows, d, generator=g)
        idx = torch.full((shard_rows,), s, dtype=torch.int64)
        writer.write_shard(s, acts, idx, torch.arange(shard_rows, dtype=torch.int32),
                           torch.zeros(shard_rows, dtype=torch.bool), None, {})
    writer.finish()
    return ActivationStore(root)


def sae_step_rows_per_s(d: int, n: int, k: int, batch: int, device: torch.device, steps: int) -> float:
    g = torch.Generator().manual_seed(0)
    w_dec = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1).to(device)
    params = [torch.nn.Parameter(w_dec.T.clone()), torch.nn.Parameter(torch.zeros(n, device=device)),
              torch.nn.Parameter(w_dec), torch.nn.Parameter(torch.zeros(d, device=device))]
    opt = torch.optim.Adam(params, lr=1e-4)
    x = torch.randn(batch, d, generator=g).to(device)

    def step():
        w_enc, b_enc, w_dec_, b_dec = params
        pre = (x - b_dec) @ w_enc + b_enc
        val, idx = pre.topk(k, dim=1)
        z = torch.zeros_like(pre).scatter(1, idx, torch.relu(val))
        loss = ((z @ w_dec_ + b_dec - x) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t)


def evict(path: Path) -> None:
    """Drop the store's files from the page cache (posix_fadvise DONTNEED), so the next pass reads the disk."""
    import os

    for file in path.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def read_pass(path: Path, args) -> float:
    """Seconds for one shuffled epoch of batches from a freshly opened store (from disk with --cold)."""
    if args.cold:
        evict(path)
    store = ActivationStore(path)
    t = time.perf_counter()
    seen = sum(len(b) for b in store.batches(args.batch, shuffle=True, buffer_shards=args.buffer_shards))
    assert seen == args.rows, f"reader returned {seen} rows of {args.rows}"
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=131_072)
    p.add_argument("--shard-rows", type=int, default=4096)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--buffer-shards", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--cold", action="store_true", help="evict the store from the page cache before every pass")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    d, n, k = 384, 16_384, 32
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        store = write_store(Path(tmp) / "store", args.rows, d, args.shard_rows)
        first, again = [], []
        for _ in range(args.repeats):                       # interleaved, so drift hits both alike
            forget_checks()                                 # as a fresh process
            first.append(read_pass(store.path, args))
            again.append(read_pass(store.path, args))
        reader = args.rows / statistics.median(again)
        mib = store.n_rows * d * 4 / 2**20
    consumer = sae_step_rows_per_s(d, n, k, args.batch, device, args.steps)
    print(device_line(device), f"| store {args.rows} rows x {d} fp32 ({mib:.0f} MiB), shuffled, "
          f"buffer {args.buffer_shards} shards of {args.shard_rows} rows, "
          f"{'cold (evicted from the page cache before each pass)' if args.cold else 'warm page cache'}")
    print(f"reader:   {reader:12.0f} rows/s")
    print(f"SAE step: {consumer:12.0f} rows/s  (dense TopK, d_in {d}, d_sae {n}, k {k}, batch {args.batch})")
    print(f"ratio reader/consumer = {reader / consumer:.1f}  (goal >= 1)")
    ratios = sorted(f / a for f, a in zip(first, again, strict=True))
    cost = statistics.median(ratios) - 1
    print(f"full read pass: {statistics.median(first):.3f} s with checksum checks, {statistics.median(again):.3f} s "
          f"without (medians of {args.repeats}); checksum cost {100 * cost:+.1f}% (median of paired ratios; "
          f"quartiles {100 * (ratios[len(ratios) // 4] - 1):+.1f}% .. {100 * (ratios[3 * len(ratios) // 4] - 1):+.1f}%)"
          f"  (goal < 10%)")
    extra = statistics.median(first) - statistics.median(again)
    epoch = args.rows / consumer
    print(f"the same checks in the first epoch of training at the SAE step's rate: {extra:.3f} s of {epoch:.0f} s "
          f"({100 * extra / epoch:.2f}%)")


if __name__ == "__main__":
    main()
