"""Train SAEs from an ActivationStore: several at once on one pass, checkpointed, resumable, reused by key.

``train(store, [cfg_a, cfg_b])`` feeds every batch to every SAE (different k, widths, seeds), which is how
to beat the I/O bound. Each SAE's key (``TrainConfig.key``: its store's key plus every training field) names
its folder; an SAE whose folder already holds that key is loaded, not retrained, and a folder holding
another key is an error naming both. A checkpoint every ``checkpoint_every`` steps holds everything
(weights, Adam moments, dead-latent counters, RNG, metric history); rerunning the same call resumes there
and ends with exactly the result of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from mmfeatures.activations.store import ActivationStore
from mmfeatures.disk import (
    HEADER,
    artifact_key,
    cache_dir,
    check_key,
    read_header,
)
from mmfeatures.encoders.base import resolve_device
from mmfeatures.errors import ArtifactConflictError, InputError, MMFeaturesError
from mmfeatures.sae.checkpoints import Checkpoints
from mmfeatures.sae.io import read_sae_folder, save_sae
from mmfeatures.sae.modeling import (
    ARCHS,
    SAE,
    Arch,
    BatchTopK,
    JumpReLU,
    ReLU,
    TopK,
    arch_name,
    fire_counts,
    geometric_median,
    mean_l0,
)

SHARED = ("batch_size", "total_rows", "epochs", "data_seed", "normalize", "device", "checkpoint_every")
NOT_IN_KEY = ("device", "checkpoint_every", "log_every", "name")
"""Fields that never change the trained weights or metrics: where it runs, how often it saves or logs, and
the folder label. Every other field enters the SAE's key."""


class TrainingDiverged(MMFeaturesError, FloatingPointError):
    """NaN/inf during training; the message names the step and the rows, the last good
    checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """One SAE to train. Fields in SHARED must agree across SAEs trained in one pass."""

    arch: Arch
    """ReLU(...), TopK(...), BatchTopK(...), MatryoshkaBatchTopK(...) or JumpReLU(...)."""
    width: int
    """Number of latents (SAELens calls it d_sae)."""
    seed: int = 0
    """Initialisation seed."""
    tied_init: bool = True
    """Initialise W_enc = W_dec^T (Gao et al.); False draws W_enc independently (ablation)."""
    b_dec_init: str = "geometric_median"
    """TopK-style: 'geometric_median' of the first batch (Gao et al.) or 'zeros' (as SAELens)."""
    lr: float = 3e-3
    """Adam learning rate. Chosen by a measured sweep on the built-in data, scored on held-out sentences
    (docs/results/train-defaults.md): 3e-3 had the lowest held-out NMSE of the rates that leave almost no latent
    dead; 1e-2 was lower still but left over 20% of the latents dead."""
    warmup_steps: int | None = None
    """Linear LR warm-up in steps; None = 5% of the run (the sweep: within 1% of no warm-up on short runs,
    while a fixed 100 steps cost up to 80% more error on runs of a few dozen steps)."""
    decay_start: float = 0.8
    """Fraction of the run after which the LR decays linearly to 0."""
    sparsity_warmup_steps: int = 0
    """Linear ramp of the L1/L0 coefficient (ReLU-L1, JumpReLU)."""
    dead_tokens: int | None = None
    """A latent is dead after this many rows without firing (AuxK trains the dead ones). None scales it to
    the run (``dead_rows``): a tenth of the rows trained on, never less than the warm-up's rows, at most Gao et
    al.'s 10 M. A fixed threshold inside the warm-up counted latents dead before they could learn."""
    resample_every: int = 0
    """ReLU-L1: resample dead latents every N steps in the first half (Bricken et al.); 0 = off."""
    batch_size: int = 4096
    total_rows: int | None = None
    """Rows to train on; None = ``epochs`` passes over the store."""
    epochs: int = 1
    """Passes over the store when ``total_rows`` is None."""
    data_seed: int = 0
    """Shuffling seed of the activation stream."""
    normalize: str = "scale"
    """'scale' (mean squared norm = d_in, folded back on save) or 'none'."""
    device: str = "auto"
    checkpoint_every: int = 500
    log_every: int = 50
    name: str = ""
    """Output folder name; default '<arch>-<d_sae>-<hash>'."""

    def __post_init__(self):
        if type(self.arch) not in ARCHS.values():
            hint = f"make_arch({self.arch!r}, k=32)" if isinstance(self.arch, str) else "TopK(k=32)"
            raise InputError(f"TrainConfig.arch = {self.arch!r} ({type(self.arch).__name__}) is not an architecture; "
                             f"give one, e.g. TrainConfig({hint}, {self.width!r})")
        lowest = {"dead_tokens": 1, "checkpoint_every": 1, "log_every": 1}      # the others: >= 0
        for name in ("width", "batch_size", "epochs", "seed", "data_seed", "warmup_steps", "sparsity_warmup_steps",
                     "dead_tokens", "resample_every", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if name in ("warmup_steps", "dead_tokens") and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"TrainConfig.{name} = {value!r} ({type(value).__name__}); give a whole number")
            if value < lowest.get(name, 0):
                raise InputError(f"TrainConfig.{name} = {value}; give a whole number >= {lowest.get(name, 0)}")
        if isinstance(self.decay_start, bool) or not isinstance(self.decay_start, (int, float)) \
                or not 0 <= self.decay_start <= 1:
            raise InputError(f"TrainConfig.decay_start = {self.decay_start!r}; give the fraction of the run after "
                             "which the learning rate decays, in [0, 1] (1: no decay), e.g. 0.8")
        if isinstance(self.lr, (int, float)) and not math.isfinite(self.lr):
            raise InputError(f"TrainConfig.lr = {self.lr!r}; give a finite learning rate, e.g. 3e-3")
        if self.total_rows is not None and (isinstance(self.total_rows, bool) or not isinstance(self.total_rows, int)
                                            or self.total_rows < 1):
            raise InputError(f"TrainConfig.total_rows = {self.total_rows!r}; give a number of rows >= 1, or None "
                             "for `epochs` passes over the store")
        if self.width < 1 or self.batch_size < 1 or self.epochs < 1 or not isinstance(self.lr, (int, float)) \
                or self.lr <= 0:
            raise InputError(f"width, batch_size, epochs and lr must be positive (got {self.width}, {self.batch_size}, "
                             f"{self.epochs}, {self.lr!r})")
        if self.normalize not in ("scale", "none"):
            raise InputError(f"normalize={self.normalize!r}; use 'scale' or 'none'")
        if isinstance(self.arch, TopK) and self.arch.k > self.width:
            raise InputError(f"k={self.arch.k} exceeds width={self.width}; a TopK SAE keeps at most width latents "
                             "per row")
        if isinstance(self.arch, JumpReLU) and self.arch.target_l0 is not None and self.arch.target_l0 >= self.width:
            raise InputError(f"JumpReLU target_l0={self.arch.target_l0} is not below width={self.width}; give a target "
                             f"below the width, e.g. JumpReLU(target_l0={max(1, self.width // 32)})")
        if self.b_dec_init not in ("geometric_median", "zeros"):
            raise ValueError(f"b_dec_init={self.b_dec_init!r}; use 'geometric_median' or 'zeros'")
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("checkpoint_every and log_every must be >= 1")

    def fields(self) -> dict[str, Any]:
        """The fields that determine the trained SAE (JSON-able), i.e. all but ``NOT_IN_KEY``."""
        return {k: v for k, v in _jsonable(self).items() if k not in NOT_IN_KEY}

    def key(self, store_key: str) -> str:
        """The SAE's identity: its store's key plus every training field."""
        return artifact_key("sae", self.fields(), {"store": store_key})

    def folder_name(self, store_key: str) -> str:
        """``name`` if given, else '<arch>-<width>-<key>'."""
        return self.name or f"{arch_name(self.arch)}-{self.width}-{self.key(store_key)}"


def _jsonable(cfg: TrainConfig) -> dict[str, Any]:
    out = asdict(cfg)
    out["arch"] = {"type": type(cfg.arch).__name__, **asdict(cfg.arch)}
    return out


class TrainedSAE(NamedTuple):
    """One SAE of a ``train`` call: the model, where it lives, its key and its metrics."""

    sae: SAE
    folder: Path
    key: str
    metrics: dict[str, Any]
    """``metrics.json``: the config, the curve (``history``) and the ``final`` metrics."""
    reused: bool
    """True when the folder already held this SAE and nothing was trained."""


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` returns: one ``TrainedSAE`` per config, in the order given."""

    trained: tuple[TrainedSAE, ...]

    @property
    def saes(self) -> tuple[SAE, ...]:
        return tuple(t.sae for t in self.trained)

    @property
    def sae(self) -> SAE:
        """The SAE of a one-config call."""
        if len(self.trained) != 1:
            raise InputError(f"this result holds {len(self.trained)} SAEs; use .saes or .trained")
        return self.trained[0].sae

    def __len__(self) -> int:
        return len(self.trained)

    def __iter__(self) -> Iterator[TrainedSAE]:
        return iter(self.trained)

    def __getitem__(self, i: int) -> TrainedSAE:
        return self.trained[i]


@dataclass
class _State:
    """One SAE's trainer state (all of it checkpointed)."""

    cfg: TrainConfig
    sae: SAE
    opt: torch.optim.Adam
    since_fired: torch.Tensor  # (d_sae,) rows since each latent last fired
    window_fires: torch.Tensor  # (d_sae,) fires since the last log / resample
    window_rows: int = 0
    dead_rows: int = 1_000_000  # the run's dead threshold in rows (``dead_rows``)
    history: list = dataclasses.field(default_factory=list)
    last_density: torch.Tensor | None = None  # (d_sae,) feature density over the last log window


WARMUP_FRACTION = 0.05
"""The warm-up, as a fraction of the run, when ``warmup_steps`` is None."""


def warmup_steps(cfg: TrainConfig, total: int) -> int:
    """The warm-up length in steps for a run of ``total`` steps."""
    return cfg.warmup_steps if cfg.warmup_steps is not None else max(1, round(WARMUP_FRACTION * total))


DEAD_FRACTION, DEAD_MAX = 0.1, 10_000_000


def dead_rows(cfg: TrainConfig, total_rows: int) -> int:
    """Rows without firing after which a latent counts as dead, for a run of ``total_rows`` rows."""
    if cfg.dead_tokens is not None:
        return cfg.dead_tokens
    warm = warmup_steps(cfg, max(total_rows // cfg.batch_size, 1)) * cfg.batch_size
    return min(DEAD_MAX, max(round(DEAD_FRACTION * total_rows), warm, cfg.batch_size))


def _lr_factor(cfg: TrainConfig, step: int, total: int) -> float:
    warm = min(1.0, (step + 1) / max(warmup_steps(cfg, total), 1))
    start = int(cfg.decay_start * total)
    decay = 1.0 if step < start else max(0.0, (total - step) / max(total - start, 1))
    return warm * decay


@torch.no_grad()
def _metrics(x: torch.Tensor, out, st: _State, step: int, rows_seen: int) -> dict[str, Any]:
    err = (out.recon.detach() - x).pow(2).sum()
    var = (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)
    nmse = float(err / var)
    density = (st.window_fires / max(st.window_rows, 1)).cpu()
    hist, edges = np.histogram(np.log10(density.numpy() + 1e-10), bins=20, range=(-10, 0))
    return {"step": step, "rows": rows_seen, "nmse": nmse, "explained_variance": 1 - nmse,
            "l0": mean_l0(out.latents),
            "dead_fraction": float((st.since_fired >= st.dead_rows).float().mean()),
            "dense_fraction": float((density > 0.1).float().mean()),
            "mse": float(out.mse), "sparsity_loss": float(out.sparsity), "aux_loss": float(out.aux),
            **({"prefix_loss": float(out.prefix)} if out.prefix is not None else {}),
            "density_hist": {"log10_edges": edges.tolist(), "counts": hist.tolist()}}


def _resample(st: _State, x: torch.Tensor, recon: torch.Tensor, gen: torch.Generator) -> int:
    """Bricken et al.: dead latents get directions of badly reconstructed inputs; Adam resets."""
    dead = (st.window_fires == 0).nonzero().squeeze(1)
    if not len(dead):
        return 0
    sae = st.sae
    with torch.no_grad():
        loss = (recon - x).pow(2).sum(1)
        pick = torch.multinomial((loss.pow(2) + 1e-12).cpu(), len(dead), replacement=True, generator=gen)
        directions = torch.nn.functional.normalize(x[pick.to(x.device)] - sae.b_dec, dim=1)
        alive = torch.ones(sae.d_sae, dtype=torch.bool, device=x.device)
        alive[dead] = False
        enc_norm = sae.W_enc[:, alive].norm(dim=0).mean() if bool(alive.any()) else torch.tensor(1.0)
        sae.W_dec[dead] = directions * sae.W_dec[alive].norm(dim=1).mean().clamp_min(1e-3)
        sae.W_enc[:, dead] = directions.T * 0.2 * enc_norm
        sae.b_enc[dead] = 0
        for p, rows in ((sae.W_dec, dead), (sae.b_enc, dead)):
            state = st.opt.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][rows] = 0
        state = st.opt.state.get(sae.W_enc, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][:, dead] = 0
    return len(dead)


def train(store: ActivationStore | str | Path, configs: TrainConfig | Sequence[TrainConfig], out_dir: str | Path | None = None,
          *, progress: bool = True, on_log: Callable[[int, list[dict[str, Any]]], None] | None = None
          ) -> TrainResult:
    """Train SAEs on ``store`` in one pass (or load those already trained); SAELens folders in ``out_dir``.

    ``out_dir`` defaults to the user cache's ``saes/<store key>/``. Each SAE's folder is named by its key
    (or ``cfg.name``); a folder that already holds that key is reused, one that holds another SAE raises
    ArtifactConflictError naming both. ``on_log(step, metrics)`` is called at every log step (live plots).

    >>> result = train(store, TrainConfig(TopK(k=16), 1536))        # doctest: +SKIP
    >>> result.sae, result[0].metrics["final"]["nmse"]              # doctest: +SKIP
    """
    if isinstance(store, (str, os.PathLike)):          # a store folder, as `mmfeatures extract` printed it
        store = ActivationStore(store)
    elif not isinstance(store, ActivationStore):
        raise InputError(f"train() reads an ActivationStore or its folder, got {type(store).__name__}; e.g. "
                         "train(extract(...).stores[site], config)")
    cfgs = [configs] if isinstance(configs, TrainConfig) else list(configs)
    if not cfgs or not all(isinstance(c, TrainConfig) for c in cfgs):
        raise InputError(f"train() needs one TrainConfig or a list of them, got {configs!r}")
    for f in SHARED:
        values = {getattr(c, f) for c in cfgs}
        if len(values) > 1:
            raise InputError(f"SAEs trained in one pass must share {f!r}; got {sorted(map(str, values))}")
    out_dir = Path(out_dir) if out_dir is not None else cache_dir("saes", store.key)
    keys = [c.key(store.key) for c in cfgs]
    folders = [out_dir / c.folder_name(store.key) for c in cfgs]
    if len(set(folders)) < len(folders):
        raise InputError(f"two configs would share a folder ({[f.name for f in folders]}); give them distinct names")
    todo = [i for i, (folder, key, c) in enumerate(zip(folders, keys, cfgs, strict=True))
            if not _holds(folder, key, c)]
    if todo:
        _fit(store, [cfgs[i] for i in todo], [keys[i] for i in todo], [folders[i] for i in todo], out_dir,
             progress, on_log)
    out = []
    for i, (folder, key) in enumerate(zip(folders, keys, strict=True)):
        sae = read_sae_folder(folder)
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        out.append(TrainedSAE(sae, folder, key, metrics, i not in todo))
    return TrainResult(tuple(out))


def _holds(folder: Path, key: str, cfg: TrainConfig) -> bool:
    """True when ``folder`` holds the SAE ``key``, False when there is nothing there yet; a folder holding
    anything else is an error naming both."""
    if not folder.exists():
        return False
    what = f"{type(cfg.arch).__name__} width {cfg.width}"
    header = read_header(folder, HEADER, fix=f"delete {folder} to train it again")
    if header is None or header.get("key") is None:
        raise ArtifactConflictError(f"{folder} exists but holds no mmfeatures SAE header (written by another tool "
                                    f"or an older mmfeatures?); choose another folder, or delete it to train {what} "
                                    "there")
    check_key(folder, "SAE", key, what, header)
    return True


def _check_fits(d: int, cfgs: list[TrainConfig], device: torch.device) -> None:
    """Refuse, before allocating, SAEs whose weights, gradients and Adam's two moments (4 copies of 2 d x width
    floats) exceed the device's memory: a width of 10^11 would otherwise crash the machine or the process."""
    need = sum(16 * 2 * d * c.width for c in cfgs)
    if device.type == "cuda":
        have = torch.cuda.get_device_properties(device).total_memory
    else:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else None
    if have and need > have:
        widths = [c.width for c in cfgs]
        raise InputError(f"width(s) {widths} on d = {d} need {need / 2**30:,.1f} GiB for weights, gradients and "
                         f"Adam's moments, more than the {have / 2**30:,.1f} GiB of {device}; lower the width")


def _fit(store: ActivationStore, cfgs: list[TrainConfig], keys: list[str], folders: list[Path], out_dir: Path,
         progress: bool, on_log) -> None:
    """The training loop: every config on every batch, checkpointed, each SAE saved as one atomic folder."""
    base = cfgs[0]
    device = resolve_device(base.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    total_rows = base.total_rows or store.n_rows * base.epochs
    steps = total_rows // base.batch_size
    if steps < 1 or store.n_rows < base.batch_size:
        raise InputError(f"the store has {store.n_rows} rows ({total_rows} to train on), fewer than one batch of "
                         f"{base.batch_size}; lower batch_size or add rows")
    _check_fits(store.d, cfgs, device)
    scale = store.input_scale() if base.normalize == "scale" else 1.0
    ckpt = Checkpoints(out_dir, f"checkpoint-{artifact_key('checkpoint', {'saes': keys})}")

    states = []
    for c in cfgs:
        sae = SAE(store.d, c.width, c.arch, seed=c.seed, tied_init=c.tied_init).to(device).train()
        opt = torch.optim.Adam(_param_groups(sae), lr=c.lr, betas=(0.9, 0.999))
        states.append(_State(c, sae, opt, torch.zeros(c.width, dtype=torch.long, device=device),
                             torch.zeros(c.width, dtype=torch.long, device=device),
                             dead_rows=dead_rows(c, steps * base.batch_size)))
    gen = torch.Generator().manual_seed(base.data_seed)
    start = 0
    start = ckpt.load(states, gen)

    from tqdm.auto import tqdm

    stream = _stream(store, base, scale, device, start)
    bar = tqdm(range(start, steps), initial=start, total=steps, unit="step", desc=f"train {len(cfgs)} SAE(s)",
               disable=not progress)
    t0, rows0 = time.perf_counter(), start * base.batch_size
    for step in bar:
        x = next(stream)
        logs = []
        for st in states:
            out = _step(st, x, step, steps, gen, ckpt)
            if (step + 1) % st.cfg.log_every == 0 or step + 1 == steps:
                logs.append(_metrics(x, out, st, step + 1, (step + 1) * base.batch_size))
                st.history.append(logs[-1])
                st.last_density = st.window_fires.float() / max(st.window_rows, 1)
                st.window_fires.zero_()
                st.window_rows = 0
        if logs:
            rate = ((step + 1) * base.batch_size - rows0) / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(rows_per_s=f"{rate:,.0f}", nmse=f"{logs[0]['nmse']:.3f}", l0=f"{logs[0]['l0']:.1f}")
            if on_log is not None:
                on_log(step + 1, logs)
        if (step + 1) % base.checkpoint_every == 0 and step + 1 < steps:
            ckpt.save(states, step + 1, gen)
    stream = _stream(store, base, scale, device, 0)
    batches = max(1, min(CALIBRATION_ROWS // base.batch_size, store.n_rows // base.batch_size - 1))
    calibration = [next(stream) for _ in range(batches)]
    held_out = next(stream) if store.n_rows // base.batch_size > batches else calibration[-1]
    for st, key, folder in zip(states, keys, folders, strict=True):
        st.sae.eval()
        final = {**(st.history[-1] if st.history else {}), **_inference(st, calibration, held_out),
                 "dead_rows": st.dead_rows}
        log_density = (st.last_density + 1e-10).log10() if st.last_density is not None else None
        metrics = {"config": _jsonable(st.cfg), "input_scale": scale, "steps": steps, "history": st.history,
                   "final": final}
        save_sae(st.sae, folder, model_name=store.config.model, hook_name=store.config.site, input_scale=scale,
                 metadata={"modality": store.config.site.split(".")[0], "store": str(store.path),
                           "store_key": store.key, "store_dataset": store.config.dataset,
                           "pooling": store.config.pooling, **data_metadata(store),
                           "train_config": _jsonable(st.cfg)},
                 log_density=log_density, files={"metrics.json": json.dumps(metrics, indent=1)},
                 key=key, inputs={"store": store.key}, fields=st.cfg.fields())
    ckpt.remove()


def data_metadata(store: ActivationStore) -> dict[str, Any]:
    """What an SAE trained on ``store`` read, for its cfg.json: the languages, and a summary of the training data
    (the store's key and description, its dataset fingerprint, and counts of examples, rows and concepts)."""
    examples = store.examples
    return {"languages": sorted({e["language"] for e in examples if e.get("language")}),
            "training_data": {"store_key": store.key, "store_summary": store.config.summary,
                              "dataset_fingerprint": store.config.dataset, "n_examples": store.config.n_examples,
                              "n_rows": store.n_rows, "n_concepts": len({e["concept"] for e in examples
                                                                         if e.get("concept")}),
                              "pooling": store.config.pooling, "role": store.config.role}}


CALIBRATION_ROWS = 65_536
"""Rows BatchTopK's inference threshold is calibrated on at the end of training."""


@torch.no_grad()
def _inference(st: _State, calibration: list[torch.Tensor], held_out: torch.Tensor) -> dict[str, float]:
    """The final SAE as ``encode`` runs it. BatchTopK's (and Matryoshka's) global threshold is set from the
    ``calibration`` batches so that their mean L0 is k (the running estimate during training trails the weights);
    ``l0_inference`` and ``nmse_inference`` are measured on ``held_out``, rows of the next batch (the same batch
    only when the store holds no other), for every architecture."""
    sae = st.sae
    if isinstance(st.cfg.arch, BatchTopK):
        k = st.cfg.arch.k
        tops = []
        # each batch's 2 k B largest: the global k N-th is among them unless one batch holds more than twice its
        # share of the k N largest
        for x in calibration:
            flat = sae.pre_acts(x).relu().flatten()
            tops.append(flat.topk(min(2 * k * len(x), flat.numel())).values)
        top = torch.cat(tops)
        n = min(k * sum(len(x) for x in calibration), top.numel() - 1)
        pair = top.topk(n + 1).values[-2:]                 # between the n-th and (n+1)-th largest: L0 = k
        sae.threshold_ema.fill_(float(pair.sum()) / 2)
    z = sae.encode(held_out)
    err = (sae.decode(z) - held_out).pow(2).sum() / (held_out - held_out.mean(0)).pow(2).sum().clamp_min(1e-12)
    return {"l0_inference": float((z > 0).sum(1).float().mean()), "nmse_inference": float(err)}


def _param_groups(sae: SAE) -> list[dict[str, Any]]:
    """Adam's groups: every trained weight at the run's lr, a JumpReLU's thresholds at ``threshold_lr`` times it."""
    rest = [p for p in sae.parameters() if p.requires_grad and p is not sae.log_threshold]
    groups = [{"params": rest, "lr_scale": 1.0}]
    if isinstance(sae.arch, JumpReLU):
        groups.append({"params": [sae.log_threshold], "lr_scale": sae.arch.threshold_lr})
    return groups


def _stream(store: ActivationStore, cfg: TrainConfig, scale: float, device: torch.device, start_step: int):
    """Batches from ``start_step`` on; epoch e reshuffles with seed data_seed + e. Resuming skips
    the consumed batches without reading them."""
    per_epoch = store.n_rows // cfg.batch_size
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        for batch in store.batches(cfg.batch_size, shuffle=True, seed=cfg.data_seed + epoch, drop_last=True,
                                   start_batch=skip):
            yield (batch * scale).to(device, non_blocking=True)
        epoch, skip = epoch + 1, 0


def _step(st: _State, x: torch.Tensor, step: int, steps: int, gen: torch.Generator, ckpt: Checkpoints):
    sae, cfg = st.sae, st.cfg
    if step == 0 and isinstance(cfg.arch, TopK) and cfg.b_dec_init == "geometric_median":
        with torch.no_grad():
            sae.b_dec.copy_(geometric_median(x))
    if step == 0 and isinstance(cfg.arch, JumpReLU) and cfg.arch.target_l0 is not None:
        _threshold_init(sae, x, cfg.arch.target_l0)
    for group in st.opt.param_groups:
        group["lr"] = cfg.lr * _lr_factor(cfg, step, steps) * group["lr_scale"]
    dead = st.since_fired >= st.dead_rows
    out = sae(x, dead_mask=dead)
    warm = min(1.0, (step + 1) / cfg.sparsity_warmup_steps) if cfg.sparsity_warmup_steps else 1.0
    loss = out.loss - (1 - warm) * out.sparsity
    if not torch.isfinite(loss):
        bad_in = (~torch.isfinite(x).all(1)).nonzero().squeeze(1).tolist()
        bad_out = (~torch.isfinite(out.recon).all(1)).nonzero().squeeze(1).tolist()
        found = ckpt.found()
        kept = f"the last good checkpoint is {found[0]}" if found else "no checkpoint had been written yet"
        raise TrainingDiverged(
            f"{type(cfg.arch).__name__} SAE (width {cfg.width}) diverged at step {step}: loss {float(loss.detach())}; "
            f"batch rows with non-finite input {bad_in[:10]}, non-finite reconstruction {bad_out[:10]}; {kept}. "
            "Lower lr, or re-extract the store with on_nonfinite='raise' to find bad inputs")
    st.opt.zero_grad(set_to_none=True)
    loss.backward()
    sae.project_decoder_grad()
    st.opt.step()
    sae.normalise_decoder()
    with torch.no_grad():
        fires = fire_counts(out.latents)
        st.since_fired += x.shape[0]
        st.since_fired[fires > 0] = 0
        st.window_fires += fires
        st.window_rows += x.shape[0]
    if isinstance(cfg.arch, ReLU) and cfg.resample_every and step > 0 and step % cfg.resample_every == 0 \
            and step < steps // 2:
        _resample(st, x, out.recon.detach(), gen)
        st.window_fires.zero_()
        st.window_rows = 0
    return out


@torch.no_grad()
def _threshold_init(sae: SAE, x: torch.Tensor, target_l0: float) -> None:
    """JumpReLU with a target: start each latent's threshold at the quantile of its pre-activations on the first
    batch at which it fires on target_l0 / d_sae of the rows, so the run starts at the target L0 (Adam moves a log
    threshold by about lr a step: from a fixed small start a short run never gets there)."""
    pre = sae.pre_acts(x)
    fires = min(max(round(target_l0 / sae.d_sae * len(x)), 1), len(x) - 1)
    theta = pre.kthvalue(len(x) - fires, dim=0).values          # `fires` rows lie above it
    sae.log_threshold.copy_(theta.clamp_min(sae.arch.init_threshold).log())
