"""SAE quality on activations with known features: every architecture at matched L0 on the synthetic benchmark
(mmfeatures.sae.synthetic: a planted dictionary with Zipf firing, a parent/child hierarchy, correlated groups
and noise), scored on fresh rows against the truth. Prints one table, the device and an untrained SAE as the
floor every trained one must beat.

    .venv/bin/python benchmarks/bench_synthetic.py                   # 4,096 features in 256 dims (CPU default)
    .venv/bin/python benchmarks/bench_synthetic.py --features 1024 --d 64 --rows 200000   # a quick run

TopK, BatchTopK and Matryoshka BatchTopK are given k = --l0; JumpReLU target_l0 = --l0; ReLU-L1 has no L0 knob,
so it runs --relu-l1 coefficients and the table keeps the one whose measured L0 is nearest --l0 (and says so).
Seeds: --seeds SAE initialisations per architecture, mean and range printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import device_line  # noqa: E402

COLUMNS = ("mcc", "recall", "precision", "explained_variance", "l0", "dead_fraction", "dense_fraction", "absorption")


def main() -> None:
    import mmfeatures as mmf
    from mmfeatures.sae.synthetic import SyntheticConfig, SyntheticFeatures, score, synthetic_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=4096)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--width", type=int, default=None, help="SAE latents (default: --features)")
    parser.add_argument("--l0", type=int, default=16)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the training store")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--relu-l1", default="1,3,10")
    parser.add_argument("--dir", default=None, help="where the store and SAEs go (default: a temporary folder)")
    args = parser.parse_args()
    print(device_line(torch.device("cpu")))
    config = SyntheticConfig(n_features=args.features, d=args.d, mean_active=float(args.l0),
                             n_parents=max(1, args.features // 32))     # 128 at the default 4,096
    data = SyntheticFeatures(config)
    width = args.width or args.features
    folder = Path(args.dir or tempfile.mkdtemp(prefix="mmf-synth-"))
    store = synthetic_store(data, args.rows, store_dir=folder / "stores")
    print(f"{data}\n{args.rows:,} training rows x {args.epochs} epochs, batches of {args.batch_size}; SAEs of "
          f"{width} latents; scored on 20,000 fresh rows")
    archs = {"TopK": mmf.TopK(k=args.l0), "BatchTopK": mmf.BatchTopK(k=args.l0),
             "Matryoshka BatchTopK": mmf.MatryoshkaBatchTopK(k=args.l0), "JumpReLU": mmf.JumpReLU(target_l0=args.l0)}
    archs.update({f"ReLU-L1 (l1 {c})": mmf.ReLU(l1_coefficient=float(c)) for c in args.relu_l1.split(",")})
    rows = {"untrained TopK (floor)": [score(mmf.SAE(args.d, width, mmf.TopK(k=args.l0), seed=s), data)
                                       for s in range(args.seeds)]}
    for name, arch in archs.items():
        t = time.perf_counter()
        cfgs = [mmf.TrainConfig(arch, width, seed=s, batch_size=args.batch_size, epochs=args.epochs,
                                name=f"{name}-{s}".replace(" ", "_")) for s in range(args.seeds)]
        result = mmf.train(store, cfgs, folder / "saes", progress=False)
        rows[name] = [score(t.sae, data) for t in result]
        print(f"  trained {name} x {args.seeds} in {time.perf_counter() - t:.0f} s", flush=True)
    relu = [n for n in rows if n.startswith("ReLU")]
    keep = min(relu, key=lambda n: abs(np.mean([r["l0"] for r in rows[n]]) - args.l0))
    print(f"ReLU-L1 kept: {keep} (measured L0 nearest {args.l0}); the others are listed below the line")
    print(f"\n| SAE | {' | '.join(COLUMNS)} |\n|---|{'---|' * len(COLUMNS)}")
    order = [n for n in rows if not n.startswith("ReLU")] + [keep] + [n for n in relu if n != keep]
    for name in order:
        cells = []
        for col in COLUMNS:
            values = np.array([r[col] for r in rows[name]], dtype=float)
            if not np.isfinite(values).any():
                cells.append("n/a")
                continue
            spread = f" [{np.nanmin(values):.3f}, {np.nanmax(values):.3f}]" if len(values) > 1 else ""
            cells.append(f"{np.nanmean(values):.3f}{spread}")
        print(f"| {name}{' (off target L0)' if name in relu and name != keep else ''} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
