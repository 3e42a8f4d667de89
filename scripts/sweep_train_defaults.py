"""The learning-rate / warm-up sweep behind docs/results/train-defaults.md. Every number on that page comes from here.

    HF_HUB_OFFLINE=1 TQDM_DISABLE=1 MPLBACKEND=Agg .venv/bin/python scripts/sweep_train_defaults.py
    .venv/bin/python scripts/sweep_train_defaults.py --report    # page and figure only, from the JSON

What it measures (CPU, about 15 minutes on one shared core; reruns reuse the stores, the SAEs and the JSON):

- Data: the built-in concept sentences (123 concepts x 16 languages x 2 sentences). Token activations
  of offline:e5-small at text.layer.8.resid (``pooling="none"``) of sentence 1 of every concept and
  language are the training store; those of sentence 2 are the held-out store (same concepts and
  languages, other text, no token of it is seen in training).
- SAEs as the call sites train them (mmfeatures/jobs/train.py, the notebooks, scripts/*_study.py):
  TopK(k=16), 1,536 latents, batch 2,048, 3 epochs (``total_rows = 3 * n_rows``), decay_start 0.8.
- Stage ``grid`` (3 epochs): lr in {3e-4, 1e-3, 3e-3, 1e-2} x warm-up in {0, 5 % of the run, 20, 100
  steps}, 3 seeds (seed s sets both the initialisation and the data order); dead_tokens 100,000 as at
  the call sites.
- Stage ``relu`` (3 epochs, seed 0): ReLU(l1_coefficient=5), no sparsity warm-up, every lr x warm-up
  {0, 100}.
- Stage ``long`` (10 epochs): the 2 best lrs x the 3 best warm-ups of the grid (each ranked by its best
  cell), and the call sites' (3e-3, 20 steps), 3 seeds; these SAEs are also scored on their training
  rows, to tell dead latents from latents specific to the training text.
- The recommended lr: the lowest 10-epoch held-out NMSE among settings that leave at most 1 % of the
  latents never firing on held-out rows.
- Stage ``dead``: dead_tokens {20,000, 5,000} at 3 epochs and {1,000,000, 20,000} at 10 epochs for the
  best grid setting, next to the 100,000 of the other stages.
- Score of every SAE on the held-out store: NMSE = sum of squared error / sum of squared deviation from
  the held-out mean; measured L0 (mean active latents per row); the fraction of latents that never
  fire on any held-out row. The last training batch's NMSE (from metrics.json) is kept for reference.

SAEs trained together in one ``train()`` pass see the same batches and do not interact, so a pass per
(stage, seed) is exactly a set of separate runs; a pass that diverges is retrained config by config.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("mmfeatures") is None:  # not installed: use this checkout (PYTHONPATH may pick another)
    sys.path.insert(0, str(ROOT))

import mmfeatures as mmf  # noqa: E402
from mmfeatures.disk import cache_dir, write_text_atomic  # noqa: E402


def _saes(result) -> list:
    """``train()``'s SAEs as a list, whether it returned an SAE, a list, or a result object with ``.saes``."""
    if hasattr(result, "saes"):
        return list(result.saes)
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


MODEL, SITE = "offline:e5-small", "text.layer.8.resid"
K, WIDTH, BATCH, L1 = 16, 1536, 2048, 5.0
LRS = [3e-4, 1e-3, 3e-3, 1e-2]
WARMUPS = ["0", "5%", "20", "100"]                  # steps, or a percentage of the run's steps
RELU_WARMUPS = ["0", "100"]
RELU_SEEDS = [0]
DEAD_SHORT, DEAD_LONG = [20_000, 5_000], [1_000_000, 20_000]
N_LONG_LR, N_LONG_WARMUP = 2, 3
MAX_DEAD = 0.01          # a recommended setting leaves at most this fraction of latents that never fire
CALL_SITE = {"lr": 3e-3, "warmup": "20", "dead_tokens": 100_000}
OLD_DEFAULT = {"lr": 4e-4, "warmup": "100", "dead_tokens": 1_000_000}
SEEDS = [0, 1, 2]
SHORT, LONG = 3, 10
OUT_JSON = ROOT / "docs/results/train-defaults.json"
OUT_MD = ROOT / "docs/results/train-defaults.md"
FIGURE = ROOT / "docs/results/figures/train_defaults_lr.png"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def warmup_steps(rule: str, steps: int) -> int:
    """'20' -> 20 steps; '5%' -> 5 % of the run's steps (at least 1)."""
    if rule.endswith("%"):
        return max(1, round(float(rule[:-1]) / 100 * steps))
    return int(rule)


def run_name(arch: str, lr: float, warmup: str, dead: int) -> str:
    return f"{arch}-lr{lr:g}-w{warmup.replace('%', 'pct')}-dt{dead}"


def run_key(stage: str, epochs: int, seed: int, arch: str, lr: float, warmup: str, dead: int) -> str:
    return f"{stage}|{epochs}ep|seed{seed}|{run_name(arch, lr, warmup, dead)}"


# ---------------------------------------------------------------------------------------------------------------
# data, training, scoring


def stores(work: Path):
    ds = mmf.ConceptDataset.builtin(["concepts"])
    split = {n: [e for e in ds if e.id.rsplit("/", 1)[-1] == n] for n in ("1", "2")}
    assert len(split["1"]) == len(split["2"]) == len(ds) // 2, "expected two sentences per concept and language"
    out = {}
    for n, name in (("1", "train"), ("2", "heldout")):
        r = mmf.extract(MODEL, split[n], [SITE], pooling="none", store_dir=work / "stores", batch_size=64,
                        device="cpu", progress=False)
        out[name] = r.stores[SITE]
    return out


@torch.no_grad()
def score(sae, x: torch.Tensor) -> dict:
    """Held-out NMSE (about the data's own mean), measured L0 and the never-firing fraction."""
    err, fires, active = 0.0, torch.zeros(sae.d_sae, dtype=torch.long), 0
    for chunk in x.split(8192):
        z = sae.encode(chunk)
        err += float((sae.decode(z) - chunk).double().pow(2).sum())
        on = z > 0
        fires += on.sum(0)
        active += int(on.sum())
    var = float((x.double() - x.double().mean(0)).pow(2).sum())
    return {"nmse": err / var, "l0": active / len(x), "never_fire": float((fires == 0).float().mean())}


def configs_for(specs: list[dict], seed: int, total_rows: int, steps: int, device: str) -> list:
    cfgs = []
    for s in specs:
        arch = mmf.TopK(k=K) if s["arch"] == "topk" else mmf.ReLU(l1_coefficient=L1)
        cfgs.append(mmf.TrainConfig(arch, WIDTH, seed=seed, data_seed=seed, lr=s["lr"],
                                    warmup_steps=warmup_steps(s["warmup"], steps), dead_tokens=s["dead_tokens"],
                                    batch_size=BATCH, total_rows=total_rows, device=device, log_every=10,
                                    checkpoint_every=10_000,
                                    name=run_name(s["arch"], s["lr"], s["warmup"], s["dead_tokens"])))
    return cfgs


def train_pass(store, cfgs: list, folder: Path) -> tuple[list, list, float]:
    """Train (or load) ``cfgs`` in one pass; a diverging pass is redone config by config (None = diverged)."""
    paths = [folder / c.name for c in cfgs]
    if all((p / "cfg.json").is_file() for p in paths):
        return [mmf.load_sae(str(p)) for p in paths], paths, 0.0
    t0 = time.perf_counter()
    try:
        saes = _saes(mmf.train(store, cfgs, folder, progress=False))
    except mmf.sae.TrainingDiverged:
        log(f"  a pass of {len(cfgs)} diverged; training them one by one")
        saes = []
        for c, p in zip(cfgs, paths, strict=True):
            if (p / "cfg.json").is_file():
                saes.append(mmf.load_sae(str(p)))
                continue
            try:
                saes.append(_saes(mmf.train(store, c, folder, progress=False))[0])
            except mmf.sae.TrainingDiverged as e:
                log(f"  {c.name} diverged: {str(e)[:120]}")
                (folder / f"{c.name}.diverged").write_text(str(e))
                saes.append(None)
    return saes, paths, time.perf_counter() - t0


def run_stage(stage: str, specs: list[dict], epochs: int, data: dict, x: dict, results: dict, work: Path,
              seeds: list[int], device: str) -> None:
    """Each seed: one train() pass over the configs not yet in ``results``, then held-out scores."""
    store = data["train"]
    total_rows = epochs * store.n_rows
    steps = total_rows // BATCH
    for seed in seeds:
        keys = [run_key(stage, epochs, seed, s["arch"], s["lr"], s["warmup"], s["dead_tokens"]) for s in specs]
        todo = [(k, s) for k, s in zip(keys, specs, strict=True) if k not in results["runs"]]
        if not todo:
            continue
        cfgs = configs_for([s for _, s in todo], seed, total_rows, steps, device)
        log(f"{stage}: {epochs} epochs ({steps} steps), seed {seed}: {len(cfgs)} SAEs")
        saes, paths, seconds = train_pass(store, cfgs, work / "saes" / f"{stage}-{epochs}ep-seed{seed}")
        results["train_seconds"] += seconds
        for (key, spec), cfg, sae, path in zip(todo, cfgs, saes, paths, strict=True):
            row = {**spec, "stage": stage, "epochs": epochs, "steps": steps, "seed": seed,
                   "warmup_steps": cfg.warmup_steps, "diverged": sae is None}
            if sae is not None:
                row["heldout"] = score(sae, x["heldout"])
                final = json.loads((path / "metrics.json").read_text()).get("final", {})
                row["train_last_batch_nmse"] = final.get("nmse", float("nan"))
            results["runs"][key] = row
        save(results)
        done = [results["runs"][k]["heldout"]["nmse"] for k, _ in todo if "heldout" in results["runs"][k]]
        log(f"  {seconds:.0f} s; best held-out NMSE of this pass {min(done, default=float('nan')):.4f}")


def save(results: dict) -> None:
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(OUT_JSON, json.dumps(results, indent=1, sort_keys=True))


# ---------------------------------------------------------------------------------------------------------------
# summaries


def summary(results: dict, **where) -> dict:
    """mean and sd over seeds of every metric of the runs matching ``where`` (nan when any diverged)."""
    rows = [r for r in results["runs"].values() if all(r.get(k) == v for k, v in where.items())]
    out = {"n": len(rows), "diverged": sum(r["diverged"] for r in rows),
           "warmup_steps": sorted({r["warmup_steps"] for r in rows})}
    metrics = {f"heldout_{m}": (lambda r, m=m: r["heldout"][m]) for m in ("nmse", "l0", "never_fire")}
    metrics["train_nmse"] = lambda r: r["train_last_batch_nmse"]
    metrics["train_never_fire"] = lambda r: r["train"]["never_fire"] if "train" in r else np.nan
    for name, get in metrics.items():
        vals = np.array([get(r) if not r["diverged"] else np.nan for r in rows], float)
        out[name] = (float(vals.mean()) if len(vals) else np.nan, float(vals.std(ddof=1)) if len(vals) > 1 else np.nan)
    return out


def ranked_grid(results: dict) -> list[tuple[float, float, str]]:
    """(mean held-out NMSE, lr, warm-up) of the 3-epoch TopK grid, best first."""
    cells = [(summary(results, stage="grid", arch="topk", epochs=SHORT, lr=lr, warmup=w)["heldout_nmse"][0], lr, w)
             for lr in LRS for w in WARMUPS]
    return sorted(c for c in cells if np.isfinite(c[0]))


def best_topk(results: dict) -> tuple[float, str]:
    return ranked_grid(results)[0][1:]


def long_settings(results: dict) -> list[tuple[float, str]]:
    """The N_LONG_LR best lrs x the N_LONG_WARMUP best warm-ups of the grid (each ranked by its best cell),
    and the call sites' setting."""
    ranked = ranked_grid(results)
    lrs = list(dict.fromkeys(lr for _, lr, _ in ranked))[:N_LONG_LR]
    warms = list(dict.fromkeys(w for _, _, w in ranked))[:N_LONG_WARMUP]
    out = [(lr, w) for lr in lrs for w in warms]
    call = (CALL_SITE["lr"], CALL_SITE["warmup"])
    return out + ([call] if call not in out else [])


def sae_folder(work: Path, row: dict) -> Path:
    return (work / "saes" / f"{row['stage']}-{row['epochs']}ep-seed{row['seed']}"
            / run_name(row["arch"], row["lr"], row["warmup"], row["dead_tokens"]))


def score_long_on_train(results: dict, work: Path, x: dict) -> None:
    """The 10-epoch SAEs also on their own training rows: a latent silent there is dead, not just specific to
    training text."""
    todo = [r for r in results["runs"].values() if r["epochs"] == LONG and not r["diverged"] and "train" not in r]
    if todo:
        log(f"scoring {len(todo)} {LONG}-epoch SAEs on their training rows")
    for row in todo:
        row["train"] = score(mmf.load_sae(str(sae_folder(work, row))), x["train"])
    save(results)


# ---------------------------------------------------------------------------------------------------------------
# page


def fmt(ms: tuple[float, float], digits: int = 4, scale: float = 1.0, missing: str = "diverged") -> str:
    m, s = ms
    if not np.isfinite(m):
        return missing
    m, s = m * scale, s * scale
    return f"{m:.{digits}f} ± {s:.{digits}f}" if np.isfinite(s) else f"{m:.{digits}f}"


def rel(value: float, ref: float) -> str:
    return f"{100 * (value / ref - 1):+.1f} %"


def warm_label(rule: str) -> str:
    return f"{rule} of the run" if rule.endswith("%") else f"{rule} steps"


def table(results: dict, rows: list[tuple], head: list[str], where: dict) -> list[str]:
    lines = ["| " + " | ".join(head + ["steps", "warm-up steps", "held-out NMSE", "last-batch train NMSE", "held-out L0",
                                       "never fire on held-out (%)", "never fire on training rows (%)"]) + " |",
             "|" + "---|" * (len(head) + 7)]
    for label, extra in rows:
        s = summary(results, **where, **extra)
        if not s["n"]:
            continue
        steps = sorted({r["steps"] for r in results["runs"].values()
                        if all(r.get(k) == v for k, v in {**where, **extra}.items())})
        lines.append("| " + " | ".join(label + [", ".join(map(str, steps)),
                                              ", ".join(map(str, s["warmup_steps"])),
                                              fmt(s["heldout_nmse"]), fmt(s["train_nmse"]),
                                              fmt(s["heldout_l0"], 1), fmt(s["heldout_never_fire"], 1, 100),
                                              fmt(s["train_never_fire"], 1, 100, "")]) + " |")
    return lines


def figure(results: dict) -> None:
    import matplotlib.pyplot as plt

    long = results.get("long_settings", [])
    panels = [("TopK k=16, 3 epochs", "grid", "topk", SHORT, WARMUPS),
              ("TopK k=16, 10 epochs (best grid settings)", "long", "topk", LONG,
               [w for w in WARMUPS if any(w == lw for _, lw in long)]),
              (f"ReLU l1={L1:g}, 3 epochs (seed {', '.join(map(str, RELU_SEEDS))})", "relu", "relu", SHORT,
               RELU_WARMUPS)]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    colors = dict(zip(WARMUPS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for ax, (title, stage, arch, epochs, ws) in zip(axes, panels, strict=True):
        for i, w in enumerate(ws):
            ms = [summary(results, stage=stage, arch=arch, epochs=epochs, lr=lr, warmup=w)["heldout_nmse"]
                  for lr in LRS]
            ok = [j for j, (m, _) in enumerate(ms) if np.isfinite(m)]
            if not ok:
                continue
            ax.errorbar([LRS[j] * (1 + 0.04 * (i - (len(ws) - 1) / 2)) for j in ok], [ms[j][0] for j in ok],
                        yerr=[ms[j][1] if np.isfinite(ms[j][1]) else 0 for j in ok], marker="o", ms=4,
                        capsize=2, color=colors[w], label=f"warm-up {warm_label(w)}")
            if arch == "relu":  # its L0 is not fixed by k
                for j in ok:
                    l0 = summary(results, stage=stage, arch=arch, epochs=epochs, lr=LRS[j], warmup=w)["heldout_l0"][0]
                    ax.annotate(f"L0 {l0:.0f}", (LRS[j], ms[j][0]), fontsize=6, color=colors[w], xytext=(-6, 3),
                                textcoords="offset points", ha="right")
        if stage == "long":  # the share of latents that never fire on held-out rows
            text = ["never fire on held-out rows:"] + [
                f"lr {lr:g}: " + ", ".join(
                    f"{warm_label(w).replace(' of the run', '')} "
                    f"{100 * summary(results, stage=stage, arch=arch, epochs=epochs, lr=lr, warmup=w)['heldout_never_fire'][0]:.1f}%"
                    for w in ws if summary(results, stage=stage, arch=arch, epochs=epochs, lr=lr, warmup=w)["n"])
                for lr in LRS if any(lr == x for x, _ in long)]
            ax.text(0.02, 0.03, "\n".join(text), transform=ax.transAxes, fontsize=7, va="bottom",
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
        ax.axvline(OLD_DEFAULT["lr"], color="0.6", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("held-out NMSE (mean ± sd over seeds)")
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=130)
    plt.close(fig)


def page(results: dict) -> str:
    meta = results["meta"]
    ranked = ranked_grid(results)
    lr_b, w_b = ranked[0][1:]

    def grid(lr, w, stage="grid", epochs=SHORT):
        return summary(results, stage=stage, arch="topk", epochs=epochs, lr=lr, warmup=w)

    long = [tuple(x) for x in results.get("long_settings", [])]
    long_ranked = sorted((grid(lr, w, "long", LONG)["heldout_nmse"][0], lr, w) for lr, w in long)
    lr_l, w_l = long_ranked[0][1:]
    by_lr = {lr: [w for _, w in sorted((grid(lr, w)["heldout_nmse"][0], w) for w in WARMUPS)] for lr in LRS}
    clean = [(m, lr, w) for m, lr, w in long_ranked
             if grid(lr, w, "long", LONG)["heldout_never_fire"][0] <= MAX_DEAD]
    lr_r, w_r = (clean[0] if clean else long_ranked[0])[1:]
    steps3 = sorted({r["steps"] for r in results["runs"].values() if r["epochs"] == SHORT})
    steps10 = sorted({r["steps"] for r in results["runs"].values() if r["epochs"] == LONG})
    full3 = 2 * meta["train_rows"] * SHORT // BATCH  # the call sites' stores hold both sentences

    def rows(ws, lrs=LRS):
        return [([f"{lr:g}", warm_label(w)], {"lr": lr, "warmup": w}) for lr in lrs for w in ws]

    def ms(lr, w, stage="grid", epochs=SHORT):
        return fmt(grid(lr, w, stage, epochs)["heldout_nmse"])

    dead_rows = [([f"{d:,}", f"{e}"], {"dead_tokens": d, "epochs": e})
                 for e, ds in ((SHORT, [*DEAD_SHORT, 100_000]), (LONG, [*DEAD_LONG, 100_000]))
                 for d in sorted(ds, reverse=True)]
    lines = [
        "# TrainConfig defaults: a measured lr / warm-up sweep",
        "",
        "Generated by `scripts/sweep_train_defaults.py`; every number here comes from "
        "`docs/results/train-defaults.json`. Rerun (about 15 minutes on one shared CPU core, training "
        f"{results['train_seconds'] / 60:.0f} of them; `--report` rewrites this page from the JSON):",
        "",
        "```",
        "HF_HUB_OFFLINE=1 TQDM_DISABLE=1 MPLBACKEND=Agg .venv/bin/python scripts/sweep_train_defaults.py",
        "```",
        "",
        f"**Setup.** Token activations of `{MODEL}` at `{SITE}` for the built-in concept sentences. "
        f"Training store: sentence 1 of every concept and language ({meta['train_rows']:,} token rows); held-out "
        f"store: sentence 2 ({meta['heldout_rows']:,} rows): same concepts and languages, other text. "
        f"SAEs as the call sites train them: TopK(k={K}), {WIDTH:,} latents, batch {BATCH:,}, decay_start 0.8, "
        f"{SHORT} epochs = {', '.join(map(str, steps3))} steps; {LONG} epochs = {', '.join(map(str, steps10))} "
        f"steps. The call sites train on both sentences, so their {SHORT}-epoch runs are about {full3} steps. "
        f"Seeds {', '.join(map(str, meta['seeds']))}, each setting both the initialisation and the data order; "
        "mean ± sd over seeds. NMSE = Σ squared error / Σ squared deviation from the held-out mean; L0 = mean "
        "active latents per held-out row; 'never fire' = latents with no activation on any held-out row. "
        "A warm-up of 'x % of the run' is round(x/100 · steps) steps, at least 1; 0 steps starts at the full lr. "
        f"Training took {results['train_seconds']:.0f} s ({meta['platform']}, torch {meta['torch']}, "
        f"{meta['threads']} thread(s)).",
        "",
        "## Result",
        "",
        f"- 3 epochs ({steps3[0]} steps), lowest held-out NMSE: lr {lr_b:g}, warm-up {warm_label(w_b)}: "
        f"{ms(lr_b, w_b)}. Next: "
        + "; ".join(f"lr {lr:g} / {warm_label(w)} {fmt(grid(lr, w)['heldout_nmse'])}" for _, lr, w in ranked[1:4])
        + f". The call sites' lr {CALL_SITE['lr']:g} / {warm_label(CALL_SITE['warmup'])}: "
        f"{ms(CALL_SITE['lr'], CALL_SITE['warmup'])}. The old default (lr {OLD_DEFAULT['lr']:g}, 100 steps) is "
        f"next to the grid's lr 3e-4 / 100 steps: {ms(3e-4, '100')}. Best warm-up at each lr: "
        + ", ".join(f"{lr:g}: {warm_label(by_lr[lr][0])}" for lr in LRS) + "; worst: "
        + ", ".join(f"{lr:g}: {warm_label(by_lr[lr][-1])}" for lr in LRS) + ".",
        f"- 10 epochs ({steps10[0]} steps), held-out NMSE and latents that never fire on held-out / training rows: "
        + "; ".join(f"lr {lr:g} / {warm_label(w)} {fmt(d['heldout_nmse'])}, {fmt(d['heldout_never_fire'], 1, 100)} % / "
                    f"{fmt(d['train_never_fire'], 1, 100)} %"
                    for lr, w, d in ((lr, w, grid(lr, w, 'long', LONG)) for _, lr, w in long_ranked)) + ".",
        f"- **Recommended lr: {lr_r:g}**, the lowest {LONG}-epoch held-out NMSE among settings that leave at most "
        f"{MAX_DEAD:.0%} of the latents never firing on held-out rows ({SHORT} epochs {ms(lr_r, w_r)}, {LONG} epochs "
        f"{ms(lr_r, w_r, 'long', LONG)}, with warm-up {warm_label(w_r)}). "
        + (f"lr {lr_l:g} reaches {ms(lr_l, w_l, 'long', LONG)} at {LONG} epochs but "
           f"{fmt(grid(lr_l, w_l, 'long', LONG)['train_never_fire'], 1, 100)} % of its latents never fire even on "
           "its training rows, and a lower dead_tokens (more AuxK) does not revive them (table below). "
           if (lr_l, w_l) != (lr_r, w_r) else "")
        + f"lr {LRS[-1]:g} is the top of the grid; higher rates were not tried.",
        f"- **Warm-up at lr {lr_r:g}**: relative to {warm_label(w_r)}, "
        + "; ".join(f"{warm_label(w)} changes held-out NMSE by "
                    f"{rel(grid(lr_r, w)['heldout_nmse'][0], grid(lr_r, w_r)['heldout_nmse'][0])} at {SHORT} epochs"
                    + (f" and {rel(grid(lr_r, w, 'long', LONG)['heldout_nmse'][0], grid(lr_r, w_r, 'long', LONG)['heldout_nmse'][0])}"
                       f" at {LONG} epochs" if grid(lr_r, w, "long", LONG)["n"] else "")
                    for w in WARMUPS if w != w_r)
        + f". At lr {lr_l:g} the warm-up sets how many latents die: "
        + ", ".join(f"{warm_label(w)} {fmt(grid(lr_l, w, 'long', LONG)['heldout_never_fire'], 1, 100)} %"
                    for w in WARMUPS if grid(lr_l, w, "long", LONG)["n"]) + f" never fire at {LONG} epochs.",
        "",
        "![held-out NMSE vs learning rate](figures/train_defaults_lr.png)",
        "",
        "*Held-out NMSE against the learning rate, one line per warm-up (error bars: sd over seeds; the dotted "
        f"line marks the old default lr {OLD_DEFAULT['lr']:g}).*",
        "",
        f"## TopK, {SHORT} epochs",
        "",
        *table(results, rows(WARMUPS), ["lr", "warm-up"], {"stage": "grid", "arch": "topk", "epochs": SHORT}),
        "",
        f"## TopK, {LONG} epochs",
        "",
        *table(results, [([f"{lr:g}", warm_label(w)], {"lr": lr, "warmup": w}) for lr, w in long],
               ["lr", "warm-up"], {"stage": "long", "arch": "topk", "epochs": LONG}),
        "",
        f"## dead_tokens (TopK, lr {lr_b:g}, warm-up {warm_label(w_b)})",
        "",
        "A latent is dead after `dead_tokens` rows without firing; only dead latents get the AuxK loss. "
        f"A {SHORT}-epoch run here sees {steps3[0] * BATCH:,} rows, a {LONG}-epoch run {steps10[0] * BATCH:,}: "
        "a dead_tokens above that never marks a latent dead, and AuxK never acts.",
        "",
        *table(results, dead_rows, ["dead_tokens", "epochs"], {"arch": "topk", "lr": lr_b, "warmup": w_b}),
        "",
        f"## ReLU (l1_coefficient {L1:g}, no sparsity warm-up), {SHORT} epochs, seed "
        f"{', '.join(map(str, RELU_SEEDS))}",
        "",
        "NMSE and L0 trade off here (the L1 penalty, not k, sets the sparsity), so read both columns.",
        "",
        *table(results, rows(RELU_WARMUPS), ["lr", "warm-up"], {"stage": "relu", "arch": "relu", "epochs": SHORT}),
        "",
        "## Provenance",
        "",
        f"- checkout at git {meta['git']}; the mmfeatures that ran: {meta['mmfeatures']}",
        *([f"- {meta['note']}"] if meta.get("note") else []),
        f"- written {meta['written']}",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------


def git_state() -> tuple[str, str]:
    """This checkout's commit, and which mmfeatures ran: this checkout's (clean or modified) or another copy."""
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    pkg = Path(mmf.__file__).resolve().parent
    if pkg != ROOT / "mmfeatures":
        return head, f"imported from {pkg}"
    return head, "this checkout" + (" (with uncommitted changes under mmfeatures/)"
                                    if git("status", "--porcelain", "mmfeatures") else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=None, help="stores and SAEs (default: the user cache's sweeps/train-defaults)")
    p.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: on a shared machine more threads were ~5x slower per step)")
    p.add_argument("--report", action="store_true", help="write the page and figure from the JSON only")
    p.add_argument("--note", default=None, help="a provenance line for the page (e.g. which package copy ran)")
    p.add_argument("--fresh", action="store_true", help="ignore the JSON's runs (SAEs on disk are still reused)")
    args = p.parse_args()
    t0 = time.perf_counter()
    if not args.report:
        torch.manual_seed(0)
        torch.set_num_threads(args.threads)
        work = Path(args.work) if args.work else cache_dir("sweeps", "train-defaults")
        results = json.loads(OUT_JSON.read_text()) if OUT_JSON.is_file() and not args.fresh else {}
        results.setdefault("runs", {})
        results.setdefault("train_seconds", 0.0)
        log(f"extracting {MODEL} {SITE} (reused when present) under {work}")
        data = stores(work)
        x = {k: torch.from_numpy(s.array()) for k, s in data.items()}
        results["meta"] = {"model": MODEL, "site": SITE, "k": K, "width": WIDTH, "batch": BATCH, "seeds": args.seeds,
                           "train_rows": data["train"].n_rows, "heldout_rows": data["heldout"].n_rows,
                           "torch": torch.__version__, "threads": torch.get_num_threads(),
                           "platform": f"{platform.machine()} {os.cpu_count()} CPUs", "git": git_state()[0],
                           "mmfeatures": git_state()[1], "written": time.strftime("%Y-%m-%d %H:%M")}
        log(f"train {data['train'].n_rows} rows, held-out {data['heldout'].n_rows} rows")

        seeds = args.seeds
        grid = [{"arch": "topk", "lr": lr, "warmup": w, "dead_tokens": 100_000} for lr in LRS for w in WARMUPS]
        run_stage("grid", grid, SHORT, data, x, results, work, seeds, args.device)
        relu = [{"arch": "relu", "lr": lr, "warmup": w, "dead_tokens": 100_000} for lr in LRS for w in RELU_WARMUPS]
        run_stage("relu", relu, SHORT, data, x, results, work, [s for s in RELU_SEEDS if s in seeds], args.device)

        lr_b, w_b = best_topk(results)
        log(f"best 3-epoch TopK: lr {lr_b:g}, warm-up {w_b}")
        dead = [{"arch": "topk", "lr": lr_b, "warmup": w_b, "dead_tokens": d} for d in DEAD_SHORT]
        run_stage("dead", dead, SHORT, data, x, results, work, seeds, args.device)
        results["long_settings"] = long_settings(results)
        long = [{"arch": "topk", "lr": lr, "warmup": w, "dead_tokens": 100_000} for lr, w in results["long_settings"]]
        run_stage("long", long, LONG, data, x, results, work, seeds, args.device)
        dead = [{"arch": "topk", "lr": lr_b, "warmup": w_b, "dead_tokens": d} for d in DEAD_LONG]
        run_stage("dead", dead, LONG, data, x, results, work, seeds, args.device)
        score_long_on_train(results, work, x)
        save(results)
    results = json.loads(OUT_JSON.read_text())
    if args.note is not None:
        results["meta"]["note"] = args.note
        save(results)
    figure(results)
    write_text_atomic(OUT_MD, page(results))
    log(f"wrote {OUT_MD}, {FIGURE} and {OUT_JSON} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
