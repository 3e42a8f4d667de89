"""``mmfeatures train``: one SAE on an activation store, cached by the store and the config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mmfeatures.jobs.common import (
    Record,
    Timer,
    config_dict,
    environment,
    opt,
    resolve_device,
    reusable,
    save_figure,
    table,
    writable,
)

ARCHS = ("topk", "batchtopk", "relu", "jumprelu")


@dataclass(frozen=True)
class TrainJob:
    """Train one SAE on ``store`` (resumable; a finished SAE with the same config is loaded, not retrained)."""

    store: str | None = opt(None, "activation store folder (written by `mmfeatures extract`)", required=True)
    arch: str = opt("topk", f"architecture: {', '.join(ARCHS)}")
    width: int = opt(1536, "number of latents (d_sae)")
    k: int = opt(16, "active latents per row (topk, batchtopk)")
    l1: float = opt(5.0, "L1 coefficient (relu) or L0 coefficient (jumprelu)")
    epochs: int = opt(3, "passes over the store")
    seed: int = opt(0, "initialisation and data-order seed")
    lr: float = opt(3e-3, "Adam learning rate")
    batch_size: int = opt(2048, "rows per step")
    device: str = opt("auto", "auto, cpu or cuda")
    sae_dir: str | None = opt(None, "folder for the SAE (default: the user cache, keyed by store and config)")
    out: str | None = opt(None, "folder for this job's result.json and training curve (default: none written)")
    progress: bool = opt(True, "show progress bars")

    def __post_init__(self):
        from mmfeatures.errors import InputError

        if self.arch not in ARCHS:
            raise InputError(f"arch {self.arch!r}; use one of {', '.join(ARCHS)}")
        if self.width < 1 or self.k < 1 or self.epochs < 1:
            raise InputError(f"width ({self.width}), k ({self.k}) and epochs ({self.epochs}) must be >= 1")

    def train_config(self):
        from mmfeatures.sae import BatchTopK, JumpReLU, ReLU, TopK, TrainConfig

        arch = {"topk": lambda: TopK(k=self.k), "batchtopk": lambda: BatchTopK(k=self.k),
                "relu": lambda: ReLU(l1_coefficient=self.l1), "jumprelu": lambda: JumpReLU(l0_coefficient=self.l1)}
        return TrainConfig(arch[self.arch](), self.width, seed=self.seed, lr=self.lr, warmup_steps=20,
                           batch_size=self.batch_size, dead_tokens=100_000, device=resolve_device(self.device),
                           sparsity_warmup_steps=0 if self.arch in ("topk", "batchtopk") else 200)


def open_store(path: str | None, what: str = "store"):
    from mmfeatures.activations import ActivationStore
    from mmfeatures.errors import InputError

    if not path:
        raise InputError(f"no {what} given; pass the folder `mmfeatures extract` printed")
    return ActivationStore(path)


def run_train(job: TrainJob) -> Record:
    """Train (or load) the SAE and record its final metrics and training curve."""
    from mmfeatures import plotting
    from mmfeatures.recipes import cached_saes, sae_folders

    out = writable(job.out) if job.out else None
    if out and (done := reusable(out, "train", job)):
        return done
    timer = Timer()
    store = open_store(job.store)
    config = job.train_config()
    folder = sae_folders(store, [config], epochs=job.epochs, folder=job.sae_dir)[1][0]
    cached_saes(store, [config], epochs=job.epochs, folder=job.sae_dir, progress=job.progress)
    metrics = json.loads((folder / "metrics.json").read_text())
    final = metrics.get("final", {})
    keys = ("nmse", "explained_variance", "l0", "dead_fraction", "dense_fraction")
    figures = ()
    if out and len(metrics.get("history", [])) >= 5:              # a curve needs a few logged steps
        history = metrics["history"]
        fig = plotting.curves({"NMSE": {h["step"]: h["nmse"] for h in history},
                               "dead fraction": {h["step"]: h["dead_fraction"] for h in history}},
                              xlabel="step", ylabel="value", title=f"Training {folder.name} on {store.config.site}")
        save_figure(fig, Path(out) / "training.png")
        figures = ({"file": "training.png", "caption": "NMSE and dead-latent fraction during training"},)
    record = Record(
        "train", f"SAE {job.arch} width {job.width}" + (f", k {job.k}" if "topk" in job.arch else ""),
        config_dict(job),
        tables=(table(f"Final metrics on {store.n_rows} rows of {store.config.model} {store.config.site}",
                      list(keys), [[round(float(final.get(k, float("nan"))), 4) for k in keys]]),),
        figures=figures, outputs={"sae": str(folder)}, seconds=timer.seconds, environment=environment())
    return record.save(out) if out else record
