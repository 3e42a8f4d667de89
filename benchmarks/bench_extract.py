"""Extraction into an ActivationStore ÷ a bare forward of the same model and batch size.

Goal (issue 3): >= 0.95 on CPU for offline:e5-small. The anchor is the model's own forward on
pre-tokenised batches, in this process; extraction includes tokenising, hooking, pooling,
copying to the host and writing checksummed shards.

    python benchmarks/bench_extract.py [--device cpu|cuda] [--n 512] [--batch 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_line, sentences, timed  # noqa: E402

import mmfeatures as mmf  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="offline:e5-small")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    enc = mmf.load_encoder(args.model, device=args.device, dtype=args.dtype)
    tower = enc.tower("text")
    texts = sentences(args.n)
    batches = [tower.prepare(texts[i : i + args.batch]).to(enc.device) for i in range(0, len(texts), args.batch)]
    n_tokens = sum(int(b.mask_bt.sum()) for b in batches)

    def bare():
        with torch.inference_mode(), enc.autocast():
            for b in batches:
                tower.module(**b.inputs)

    sites = {"pooled (mean, layer 11 + embed)": (["text.layer.11.resid", "text.embed"], "mean"),
             "per-token (layer 6)": (["text.layer.6.resid"], "none")}

    def into_store(site_list, pooling):
        with tempfile.TemporaryDirectory() as d:
            mmf.extract(enc, texts, site_list, pooling=pooling, batch_size=args.batch, store_dir=d,
                        shard_examples=128, progress=False)

    bare()  # warm-up
    # Interleave the anchor with each variant: on a shared 2-core machine the bare forward alone
    # varies by several percent between minutes, so compare medians of neighbouring runs.
    times = {"bare": [], **{label: [] for label in sites}}
    for _ in range(args.repeats):
        times["bare"].append(timed(bare))
        for label, (site_list, pooling) in sites.items():
            times[label].append(timed(lambda sl=site_list, po=pooling: into_store(sl, po)))
    t_bare = statistics.median(times["bare"])
    print(device_line(enc.device), f"| model {args.model} | dtype {args.dtype} | {args.n} texts, "
          f"{n_tokens} tokens, batch {args.batch} | median of {args.repeats} interleaved runs")
    print(f"bare forward:                            {t_bare:7.3f} s  ({n_tokens / t_bare:8.0f} tokens/s)")
    for label in sites:
        t = statistics.median(times[label])
        best = min(times["bare"]) / min(times[label])
        print(f"extract {label:32s} {t:7.3f} s  ratio bare/extract = {t_bare / t:.3f} "
              f"(best-of ratio {best:.3f}; goal >= 0.95)")

if __name__ == "__main__":
    main()
