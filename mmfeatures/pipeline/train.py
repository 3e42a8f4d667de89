"""The train step (``mmfeatures train``): one SAE on an activation store, or one per seed in the same pass over
it, each reused by its key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from mmfeatures.pipeline.record import Artifact, Record, opt, run_step, save_figure, table, writable
from mmfeatures.sae import ARCHS, TopK, TrainConfig


def _default(name: str):
    """TrainConfig's own default for a field: the step and the library never disagree."""
    return next(f.default for f in dataclasses.fields(TrainConfig) if f.name == name)


@dataclass(frozen=True)
class TrainStep:
    """Train one SAE on ``store``, and one more per entry of ``seeds`` in the same pass (resumable; an SAE with the
    same key is loaded, not retrained). The record holds each SAE as an artifact, in seed order, and the first
    SAE's final metrics in ``metrics`` (each further seed's under ``seed<N>/``)."""

    store: str | None = opt(None, "activation store folder (written by `mmfeatures extract`)", required=True,
                            artifact=True)
    arch: str = opt("topk", f"architecture: {', '.join(ARCHS)}")
    width: int = opt(1536, "number of latents")
    k: int = opt(16, "active latents per row (topk, batchtopk, matryoshka; jumprelu's target L0)")
    l1: float | None = opt(None, "L1 coefficient (relu; default 5) or L0 coefficient (jumprelu; default 1)")
    epochs: int = opt(3, "passes over the store")
    seed: int = opt(0, "initialisation seed")
    seeds: tuple[int, ...] = opt((), "further initialisation seeds: one more SAE each, trained in the same pass")
    lr: float = opt(_default("lr"), "Adam learning rate")
    warmup_steps: int | None = opt(_default("warmup_steps"), "linear learning-rate warm-up in steps (default: 5% of the run)")
    batch_size: int = opt(2048, "rows per step")
    dead_tokens: int = opt(_default("dead_tokens"), "a latent that has not fired for this many rows counts as dead "
                                                    "(and AuxK, for topk, trains it)")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N", volatile=True)
    sae_dir: str | None = opt(None, "folder for the SAE (default: the user cache, by the store's key)", volatile=True)
    out: str | None = opt(None, "folder for this step's result.json and training curve (default: none written)",
                          volatile=True)
    progress: bool = opt(True, "show progress bars", volatile=True)

    def __post_init__(self):
        from mmfeatures.encoders import resolve_device
        from mmfeatures.errors import InputError

        if self.width < 1 or self.k < 1 or self.epochs < 1:
            raise InputError(f"width ({self.width}), k ({self.k}) and epochs ({self.epochs}) must be >= 1")
        if len({self.seed, *self.seeds}) != 1 + len(self.seeds):
            raise InputError(f"seed {self.seed} and seeds {list(self.seeds)} repeat a seed; give each once")
        self.train_configs()                                 # every TrainConfig check, before any work
        resolve_device(self.device)
        if self.sae_dir:
            writable(self.sae_dir, "--sae-dir")

    def train_configs(self) -> list[TrainConfig]:
        """One TrainConfig per seed (``seed`` first)."""
        from mmfeatures.sae import make_arch

        first = TrainConfig(make_arch(self.arch, k=self.k, l1=self.l1), self.width, seed=self.seed, lr=self.lr,
                            warmup_steps=self.warmup_steps, batch_size=self.batch_size, epochs=self.epochs,
                            dead_tokens=self.dead_tokens, device=self.device)
        return [first, *(dataclasses.replace(first, seed=s) for s in self.seeds)]


def open_store(path: str | None, what: str = "store"):
    from mmfeatures.activations import ActivationStore
    from mmfeatures.errors import InputError

    if not path:
        raise InputError(f"no {what} given; pass the folder `mmfeatures extract` printed")
    return ActivationStore(path)


def units_of(store, sae=None):
    """(Z, labels), one row per example: the store's raw dimensions, or an SAE's latents read from the store's
    latent set in the cache (``encode_store``: encoded once, then reused by analyze, match and steer). Bars with
    rows/s show on a terminal."""
    from mmfeatures.analysis import unit_activations
    from mmfeatures.sae import SAE, encode_store

    if not isinstance(sae, SAE):
        return unit_activations(store, sae)
    return unit_activations(store, sae, latents=encode_store(store, sae, progress=None))


def run_train(step: TrainStep) -> Record:
    """Train (or load) the SAEs and record their final metrics and training curves."""

    def compute(out: Path | None) -> Record:
        from mmfeatures import plotting
        from mmfeatures.sae import train

        store = open_store(step.store)
        configs = step.train_configs()
        result = train(store, configs, step.sae_dir, progress=step.progress)
        keys = ("nmse", "explained_variance", "l0", "l0_inference", "dead_fraction", "dense_fraction")
        finals = [t.metrics.get("final", {}) for t in result]
        history = {c.seed: t.metrics.get("history", []) for c, t in zip(configs, result, strict=True)}
        figures = ()
        if out and min(map(len, history.values())) >= 5:              # a curve needs a few logged steps
            series = {f"{name} (seed {s})" if len(configs) > 1 else name: {h["step"]: h[field] for h in rows}
                      for s, rows in history.items() for name, field in (("NMSE", "nmse"),
                                                                           ("dead fraction", "dead_fraction"))}
            fig = plotting.curves(series, xlabel="step", ylabel="value",
                                  title=f"Training {result[0].folder.name} on {store.config.site}")
            save_figure(fig, out, "training.png")
            figures = ({"file": "training.png", "caption": "NMSE and dead-latent fraction during training"},)
        metrics = {f"{'' if i == 0 else f'seed{c.seed}/'}{k}": float(final[k])
                   for i, (c, final) in enumerate(zip(configs, finals, strict=True)) for k in keys if k in final}
        return Record(
            "train", f"SAE {step.arch} width {step.width}" + (f", k {step.k}" if isinstance(configs[0].arch, TopK)
                                                               else "") + (f", {len(configs)} seeds" if step.seeds
                                                                           else ""), {},
            tables=(table(f"Final metrics on {store.n_rows} rows of {store.config.model} {store.config.site}",
                          ["seed", *keys], [[c.seed, *(round(float(f.get(k, float("nan"))), 4) for k in keys)]
                                            for c, f in zip(configs, finals, strict=True)]),),
            metrics=metrics, figures=figures,
            artifacts=tuple(Artifact("sae", str(t.folder), t.key, store.config.site) for t in result),
            reused=all(t.reused for t in result))

    return run_step("train", step, compute, reuse=False)
