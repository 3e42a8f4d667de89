"""Regenerate docs/results/saes.md: every SAE architecture at two widths and three L0s, three seeds each, on
e5-small and on the synthetic benchmark, scored by the eval step (`make sae-results`; resumable: every train
and eval is a pipeline step reused by its key).

- **e5-small, layer 8**: trained on LibreOffice's help (`libreoffice:400`, the training split, 13 languages),
  scored on held-out paragraphs (`libreoffice-heldout:150`: reconstruction, L0, dead and dense latents,
  shrinkage, k-sparse probes of language and paragraph) and spliced into the model on the built-in sentences
  in English and Japanese (seed 0 of each configuration: the splice costs four passes of the model).
- **synthetic**: a planted dictionary (mmfeatures.sae.synthetic) of 1,024 features in 128 dimensions, 16
  firing per row; scored on fresh rows against the truth (MCC, recall, precision, absorption).

Three seeds at the middle L0 (intervals over seeds), one at the others. TopK, BatchTopK and Matryoshka take
k = L0, JumpReLU target_l0 = L0. ReLU-L1 has no L0 knob: each L0 column
runs one L1 coefficient (RELU_L1) and its measured L0 is what the table shows.

    python scripts/sae_results.py [--device cuda] [--out reports/sae-results] [--quick]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mmfeatures.analysis.stats import seed_interval
from mmfeatures.disk import write_text_atomic
from mmfeatures.pipeline import EvalStep, ExtractStep, TrainStep, run

ARCHS = ("topk", "batchtopk", "matryoshka", "jumprelu", "relu")
L0S = (8, 16, 32)
RELU_L1 = {8: 10.0, 16: 4.0, 32: 1.5}
SEEDS = (0, 1, 2)
SPLICE_LANGUAGES = ("en", "ja")
E5, E5_SITE = "offline:e5-small", "text.layer.8.resid"
E5_TRAIN, E5_HELDOUT = "libreoffice:400", "libreoffice-heldout:150"
E5_WIDTHS, E5_EPOCHS = (768, 1536), 2
SYNTH = dict(n_features=1024, d=128, mean_active=16.0, n_parents=32)
SYNTH_WIDTHS, SYNTH_ROWS, SYNTH_EPOCHS, SYNTH_BATCH = (1024, 2048), 200_000, 3, 256
PAGE = Path(__file__).resolve().parents[1] / "docs" / "results" / "saes.md"
COLUMNS = {  # metric in the eval record -> column heading
    "e5": {"l0": "L0", "nmse": "NMSE", "explained_variance": "EV", "dead_fraction": "dead",
           "dense_fraction": "dense", "shrinkage": "shrinkage", "probe_language_k1_latents": "lang. probe k=1",
           "probe_concept_k5_latents": "para. probe k=5", "recovered_cosine_vs_mean": "splice cos. rec. (mean)",
           "splice_crosslingual_sae": "splice transl. top-1"},
    "synthetic": {"l0": "L0", "explained_variance": "EV", "truth_mcc": "MCC", "truth_recall": "recall@0.9",
                  "truth_precision": "precision@0.9", "dead_fraction": "dead", "truth_absorption": "absorption"},
}


def configurations(widths) -> list[tuple[str, int, int, int]]:
    """Every (architecture, width, L0) at seed 0, and seeds 1 and 2 at the middle L0 (for the intervals): 50
    SAEs, which fit an afternoon on 2 CPU cores; the other L0s' rows are one seed each."""
    return [(a, w, l0, s) for a in ARCHS for w in widths for l0 in L0S
            for s in (SEEDS if l0 == L0S[1] else SEEDS[:1])]


def train_and_eval(name: str, train_store, eval_store, configs, *, epochs: int, batch_size: int, out: Path,
                   device: str, splice_seed0: bool, max_rows: int | None) -> list[dict]:
    rows = []
    for i, (arch, width, l0, seed) in enumerate(configs):
        tag = f"{arch}-w{width}-l0{l0}-s{seed}"
        trained = run(TrainStep(store=str(train_store.path), arch=arch, width=width, k=l0, epochs=epochs, seed=seed,
                                batch_size=batch_size,
                                l1=RELU_L1[l0] if arch == "relu" else None, device=device, progress=False))
        record = run(EvalStep(sae=trained.artifact("sae").path, store=str(eval_store.path), max_rows=max_rows,
                              splice=splice_seed0 and seed == SEEDS[0], languages=SPLICE_LANGUAGES,
                              out=str(out / name / tag)))
        rows.append({"model": name, "arch": arch, "width": width, "l0_target": l0, "seed": seed, **record.metrics})
        print(f"[{i + 1}/{len(configs)}] {name} {tag}: " + ", ".join(
            f"{k} {record.metrics[k]:.3f}" for k in COLUMNS[name] if k in record.metrics), flush=True)
    return rows


def e5_rows(args) -> list[dict]:
    def store(data):
        return run(ExtractStep(model=E5, sites=(E5_SITE,), data=data, device=args.device)).store(E5_SITE)

    configs = configurations(E5_WIDTHS)
    return train_and_eval("e5", store(E5_TRAIN), store(E5_HELDOUT), configs[:4] if args.quick else configs,
                          epochs=E5_EPOCHS, batch_size=1024, out=args.out, device=args.device, splice_seed0=True, max_rows=100_000)


def synthetic_rows(args) -> list[dict]:
    from mmfeatures.disk import cache_dir
    from mmfeatures.sae.synthetic import SyntheticConfig, SyntheticFeatures, synthetic_store

    data = SyntheticFeatures(SyntheticConfig(**SYNTH))
    stores = cache_dir("stores")
    train, heldout = (synthetic_store(data, SYNTH_ROWS, seed=1, store_dir=stores),
                      synthetic_store(data, 20_000, seed=2, store_dir=stores))
    configs = configurations(SYNTH_WIDTHS)
    return train_and_eval("synthetic", train, heldout, configs[:4] if args.quick else configs, epochs=SYNTH_EPOCHS,
                          batch_size=SYNTH_BATCH, out=args.out, device=args.device, splice_seed0=False, max_rows=None)


def summary(rows: list[dict], name: str) -> str:
    """One markdown table: a row per (architecture, width, L0), each cell the mean over seeds and its 95%
    interval (t over seeds)."""
    columns = COLUMNS[name]
    head = f"| arch | width | target L0 | seeds | {' | '.join(columns.values())} |\n|---|---|---|---|{'---|' * len(columns)}\n"
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["model"] == name:
            groups.setdefault((r["arch"], r["width"], r["l0_target"]), []).append(r)
    body = ""
    for (arch, width, l0), group in groups.items():
        cells = []
        for metric in columns:
            values = np.array([r.get(metric, np.nan) for r in group], float)
            values = values[np.isfinite(values)]
            if not len(values):
                cells.append("")
            elif len(values) == 1:
                cells.append(f"{values[0]:.3f}")
            else:
                mean, low, high = seed_interval(values)
                cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        target = f"l1 {RELU_L1[l0]}" if arch == "relu" else str(l0)
        body += f"| {arch} | {width} | {target} | {len(group)} | {' | '.join(cells)} |\n"
    return head + body


def _reference(rows: list[dict], name: str, metric: str) -> str:
    values = [r[metric] for r in rows if r["model"] == name and metric in r]
    return f"{np.mean(values):.3f}" if values else "n/a"


def page(rows: list[dict], environment: str) -> str:
    from mmfeatures.sae.synthetic import SyntheticConfig

    def ref(name, metric):
        return _reference(rows, name, metric)

    return f"""# SAE quality: every architecture, measured

Regenerated by `make sae-results` (`scripts/sae_results.py`; {environment}). Every cell is the mean over SAE seeds
with its 95% interval (t over seeds; three seeds, so intervals are wide). Three seeds run at L0 16 and one at
L0 8 and 32 (a cell without an interval is one seed; the splice runs on seed 0 only). TopK, BatchTopK and Matryoshka BatchTopK take k = L0 and JumpReLU
`target_l0` = L0; ReLU-L1 has no L0 knob, so its rows name the L1 coefficient and the L0 column is what it reached.

## e5-small, layer 8 (`{E5}`, `{E5_SITE}`)

Trained on `{E5_TRAIN}` (LibreOffice's help, training split, 13 languages; {E5_EPOCHS} passes in batches of 1,024), scored on `{E5_HELDOUT}`
(paragraph keys no SAE saw; up to 100,000 token rows). NMSE: squared error over squared distance to the mean;
EV: explained variance; dead: never fires on the held-out rows; dense: fires on more than 10% of them;
shrinkage: |reconstruction| / |x| (1 = none). Probes: held-out balanced accuracy of a k-sparse probe of the
language (k = 1) and the paragraph (k = 5) from latents pooled per paragraph (chance 0.5; the same probe on
neurons reads {ref("e5", "probe_language_k1_neurons")} and {ref("e5", "probe_concept_k5_neurons")}, the dense probe on every neuron
{ref("e5", "probe_language_dense")} and {ref("e5", "probe_concept_dense")}). Splice: the SAE replaces layer 8 at content tokens on the built-in sentences in
English and Japanese; "cos. rec. (mean)" is the fraction of the embedding cosine recovered between mean-ablation (0) and
the clean model (1); "transl. top-1" is retrieval of the English translation with the SAE spliced in (clean model
{ref("e5", "splice_crosslingual_clean")}, zero-ablated {ref("e5", "splice_crosslingual_zero")}, mean-ablated {ref("e5", "splice_crosslingual_mean")}).

{summary(rows, "e5")}
## Synthetic benchmark (`mmfeatures.sae.synthetic`, `{SyntheticConfig(**SYNTH).spec}`)

{SYNTH_ROWS:,} training rows, {SYNTH_EPOCHS} passes in batches of {SYNTH_BATCH}; scored on 20,000 fresh rows against the planted dictionary.
MCC: mean cosine of one-to-one matched decoder rows and true directions (an untrained SAE of the same shape
scores {ref("synthetic", "truth_floor_mcc")}, recall {ref("synthetic", "truth_floor_recall")}); recall/precision@0.9: true features with a decoder row within cosine
0.9, live latents within 0.9 of a true feature; absorption: how much more often a parent's latent stays off when
a child fires (0 = none). The data fire 16 features per row, so L0 8 is too few and 32 too many by design.

{summary(rows, "synthetic")}
## What to read from it

The tables are measurements, not tuned: no architecture's defaults were changed to make them. The metrics are
described in docs/guide.md ("Sparse autoencoders") and in `mmfeatures/sae/synthetic.py`; `benchmarks/bench_synthetic.py` runs the
single-L0 comparison at the CPU default size (4,096 features in 256 dimensions). Each step's record (tables,
density histogram, the neurons' probes, the untrained floor) is under `reports/sae-results/` after a run. The
runs are short (a few hundred to a few thousand steps on 2 CPU cores): they rank the architectures' defaults at
this budget, not at convergence.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("reports/sae-results"), help="folder for the eval records")
    parser.add_argument("--only", choices=("e5", "synthetic"), default=None, help="run one half (the page needs both)")
    parser.add_argument("--quick", action="store_true", help="four configurations per half, page not written")
    parser.add_argument("--page-only", action="store_true", help="write the page from the rows of an earlier run")
    args = parser.parse_args()
    rows = []
    if args.page_only:
        rows = json.loads((args.out / "rows.json").read_text())
    elif args.only != "e5":
        rows += synthetic_rows(args)
    if args.only != "synthetic" and not args.page_only:
        rows += e5_rows(args)
    write_text_atomic(args.out / "rows.json", json.dumps(rows, indent=1))
    if args.quick or args.only:
        print(f"rows in {args.out / 'rows.json'}; the page is written by a full run")
        return
    import torch

    device = "CUDA " + torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    write_text_atomic(PAGE, page(rows, device))
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
