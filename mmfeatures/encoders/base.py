"""One Encoder type over every registered model: a text tower, an image tower, or both.

A Tower knows how to prepare inputs (its own tokenizer or image transforms, with required
prefixes), how to run its model to the model's own embedding, and which submodule is each
hook site. Everything above (activations, analysis) talks to Encoder only.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mmfeatures.errors import InputError, SiteError
from mmfeatures.types import SITE_KINDS, Modality, Site

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


_DEVICE_RE = re.compile(r"(cpu|cuda|mps)(:\d+)?")
DEVICE_HELP = "use auto, cpu, cuda or cuda:N (mps on Apple silicon)"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch.device for ``device``: 'auto' picks cuda, then mps, then cpu; 'cpu', 'cuda', 'cuda:N'
    and 'mps' (or a torch.device) are checked against what this machine has.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        name = device.strip().lower()
        if name == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda")
            if _mps_available():
                return torch.device("mps")
            return torch.device("cpu")
        if not _DEVICE_RE.fullmatch(name) or name.startswith("cpu:") or name.startswith("mps:"):
            raise InputError(f"device {device!r} is not a device; {DEVICE_HELP}")
        dev = torch.device(name)
    else:
        raise InputError(f"device {device!r} ({type(device).__name__}) is not a device; {DEVICE_HELP}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {str(device)!r} asked for, but this machine has no usable CUDA device; "
                             "use device='cpu', or 'auto' to take the best available")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise InputError(f"device {str(device)!r} asked for, but this machine has {count} CUDA device(s) "
                             f"(cuda:0..cuda:{count - 1}); use one of them, 'cuda', 'cpu' or 'auto'")
    if dev.type == "mps" and not _mps_available():
        raise InputError(f"device {str(device)!r} asked for, but MPS (Apple silicon) is not available here; "
                         "use device='cpu', or 'auto' to take the best available")
    return dev


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}")
    return DTYPES[dtype]


@dataclass(frozen=True)
class ModelInfo:
    """What a registry name resolves to, for list_models() and provenance."""

    name: str
    """The URI-like registry name, e.g. 'offline:e5-small'."""
    modalities: tuple[str, ...]
    """'text', 'image' or both."""
    description: str
    """One line for humans."""
    source: str = ""
    """Where the weights come from (package file, hub repo, local path)."""
    real: bool = True
    """False for random-init plumbing models (tiny:...), which carry no scientific meaning."""


@dataclass
class Batch:
    """Prepared model inputs plus the masks every pooling and statistic needs."""

    inputs: dict[str, torch.Tensor]
    """Keyword arguments for the tower's forward."""
    mask_bt: torch.Tensor
    """(B, T) bool: True for real (non-padding) positions."""
    special_bt: torch.Tensor
    """(B, T) bool: True for BOS/CLS/EOS/SEP and image CLS positions."""
    token_fn: Callable[[], list[list[str]]] = list
    """Builds, per item, the token strings (text) or patch labels (image); see ``tokens``."""
    truncated: int = 0
    """How many items were cut to the model's maximum length."""

    @functools.cached_property
    def tokens(self) -> list[list[str]]:
        """Per item, token strings aligned with positions (built on first use only)."""
        return self.token_fn()

    def to(self, device: torch.device) -> Batch:
        moved = {k: v.to(device, non_blocking=True) for k, v in self.inputs.items()}
        return Batch(moved, self.mask_bt.to(device), self.special_bt.to(device), self.token_fn, self.truncated)


class Tower(abc.ABC):
    """One modality's encoder: inputs in, the model's own embedding out, hookable layers."""

    modality: Modality
    module: nn.Module
    blocks: Sequence[nn.Module]
    """The tower's transformer blocks; ``layer.N`` sites index into them."""

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @abc.abstractmethod
    def layer_module(self, layer: int, kind: str) -> nn.Module:
        """The submodule whose output is site ``{modality}.layer.{layer}.{kind}``."""

    @abc.abstractmethod
    def prepare(self, items: Sequence[Any], role: str | None = None) -> Batch:
        """Tokenise texts (with the model's required prefix) or transform images."""

    @abc.abstractmethod
    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, d) the model's own embedding (pooled / projected / normalised as the card says)."""


def as_rgb(image: Any, index: int):
    """A PIL image in RGB (grayscale, RGBA, CMYK, ... converted); the error names the item."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise InputError(f"image item {index} is {type(image).__name__}, not a PIL image")
    return image if image.mode == "RGB" else image.convert("RGB")


def image_batch(inputs: dict[str, torch.Tensor], n_images: int, n_tokens: int, has_cls: bool) -> Batch:
    """A Batch for a ViT-style tower: every position is real; position 0 is special if it is CLS."""
    mask = torch.ones(n_images, n_tokens, dtype=torch.bool)
    special = torch.zeros_like(mask)
    special[:, 0] = has_cls
    labels = (["CLS"] if has_cls else []) + [f"patch{i}" for i in range(n_tokens - has_cls)]
    return Batch(inputs, mask, special, lambda: [labels] * n_images)


def check_texts(texts: Sequence[Any], allow_empty: bool = False) -> list[str]:
    """Texts must be strings (non-empty unless allowed); the error names the bad item's index."""
    if isinstance(texts, str):
        raise InputError("expected a list of texts, got a single string; wrap it: [text]")
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"text item {i} is {type(t).__name__} ({t!r:.40}), not a string")
        if not allow_empty and not t.strip():
            raise InputError(f"text item {i} is empty or whitespace only ({t!r}); drop it or give it content")
        out.append(t)
    return out


class Encoder:
    """A registered model: ``load_encoder('offline:e5-small')`` returns one.

    >>> enc = load_encoder("tiny:bert")          # doctest: +SKIP
    >>> enc.embed_text(["a dog", "un chien"]).shape  # doctest: +SKIP
    torch.Size([2, 32])
    """

    def __init__(self, info: ModelInfo, towers: dict[Modality, Tower]):
        assert towers, "an encoder needs at least one tower"
        self.info = info
        self.towers = towers
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        for tower in towers.values():
            tower.module.eval().requires_grad_(False)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def modalities(self) -> frozenset[Modality]:
        return frozenset(self.towers)

    def __repr__(self) -> str:
        mods = "+".join(sorted(m.value for m in self.modalities))
        return f"Encoder({self.name!r}, {mods}, device={self.device}, dtype={self.dtype})"

    def tower(self, modality: Modality | str) -> Tower:
        modality = Modality(modality)
        if modality not in self.towers:
            have = sorted(m.value for m in self.towers)
            raise SiteError(f"{self.name} has no {modality.value} tower (it has: {have})")
        return self.towers[modality]

    def sites(self) -> list[str]:
        """Every hook site, e.g. ['text.embed', 'text.layer.0.resid', ...]."""
        out = []
        for mod, tower in sorted(self.towers.items(), key=lambda kv: kv[0].value):
            out.append(f"{mod.value}.embed")
            out += [f"{mod.value}.layer.{i}.{k}" for i in range(tower.n_layers) for k in SITE_KINDS]
        return out

    def check_site(self, site: str | Site) -> Site:
        """Parse and validate a site; an unknown one raises SiteError listing the valid ones."""
        try:
            parsed = Site.parse(site)
        except ValueError as e:
            raise SiteError(f"{e}; valid sites of {self.name}: {self._site_summary()}") from None
        if str(parsed) not in self.sites():
            raise SiteError(f"{self.name} has no site {str(parsed)!r}; valid sites: {self._site_summary()}")
        return parsed

    def _site_summary(self) -> str:
        parts = []
        for mod, tower in sorted(self.towers.items(), key=lambda kv: kv[0].value):
            parts.append(f"{mod.value}.embed, {mod.value}.layer.{{0..{tower.n_layers - 1}}}.{{{','.join(SITE_KINDS)}}}")
        return "; ".join(parts)

    def to(self, device: str | torch.device = "auto", dtype: str | torch.dtype | None = None) -> Encoder:
        """Move to a device; ``dtype`` sets the autocast compute dtype (weights stay fp32)."""
        self.device = resolve_device(device)
        if dtype is not None:
            self.dtype = resolve_dtype(dtype)
        for tower in self.towers.values():
            tower.module.to(self.device)
        return self

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Run under autocast when the compute dtype is bf16/fp16; a no-op in fp32."""
        if self.dtype == torch.float32:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            yield

    @torch.inference_mode()
    def embed(self, modality: Modality | str, items: Sequence[Any], role: str | None = None,
              batch_size: int = 32) -> torch.Tensor:
        """(N, d) float32 embeddings on the CPU, computed in batches on ``self.device``."""
        tower = self.tower(modality)
        if Modality(modality) is Modality.TEXT:
            items = check_texts(items, allow_empty=True)  # the model card defines "" (prefix only)
        outs = []
        for start in range(0, len(items), batch_size):
            batch = tower.prepare(items[start : start + batch_size], role=role).to(self.device)
            with self.autocast():
                outs.append(tower.embed(batch).float().cpu())
        if not outs:
            return torch.empty(0, 0)
        return torch.cat(outs)

    def embed_text(self, texts: Sequence[str], role: str | None = None, batch_size: int = 32) -> torch.Tensor:
        """The model's own text embedding; ``role`` picks a prefix where the model needs one."""
        return self.embed(Modality.TEXT, texts, role=role, batch_size=batch_size)

    def embed_image(self, images: Sequence[Any], batch_size: int = 32) -> torch.Tensor:
        """The model's own image embedding for PIL images."""
        return self.embed(Modality.IMAGE, images, batch_size=batch_size)

    def run(self, modality: Modality | str, batch: Batch, sites: Sequence[str | Site]) -> dict[str, torch.Tensor]:
        """Forward one prepared batch, returning each site's activations.

        Layer sites give (B, T, d) per-position tensors aligned with ``batch.mask_bt``; the
        ``embed`` site gives (B, d). Hooks are always removed, even if the forward raises.
        """
        tower = self.tower(modality)
        parsed = [self.check_site(s) for s in sites]
        captured: dict[str, torch.Tensor] = {}
        handles = []
        n_tokens = batch.mask_bt.shape[1]

        def hook_for(name: str):
            def hook(_module, _args, output):
                out = output[0] if isinstance(output, tuple) else output
                if out.dim() == 3 and out.shape[0] == n_tokens and out.shape[1] != n_tokens:
                    out = out.transpose(0, 1)  # sequence-first blocks (B and T told apart by T)
                captured[name] = out
            return hook

        try:
            for site in parsed:
                if site.layer is not None:
                    module = tower.layer_module(site.layer, site.kind)
                    handles.append(module.register_forward_hook(hook_for(str(site))))
            with torch.inference_mode(), self.autocast():
                embedding = tower.embed(batch)
        finally:
            for h in handles:
                h.remove()
        for site in parsed:
            if site.layer is None:
                captured[str(site)] = embedding
        return {str(s): captured[str(s)] for s in parsed}


def random_init(encoder: Encoder, seed: int = 0, towers: tuple[str, ...] | None = None) -> Encoder:
    """A copy of ``encoder`` with the same architecture and tokenizer but freshly initialised weights:
    the "random-init model" null for analyses. ``towers`` ('text', 'image') limits the re-initialisation
    to those towers (default: all). Its name gains '+random-init-<seed>' (or '+random-<tower>-<seed>' for
    one tower), the suffix ``load_encoder`` understands, so activation stores never mix it up with the
    trained model; ``info.real`` is False."""
    import copy
    import dataclasses

    chosen = tuple(encoder.towers) if towers is None else tuple(Modality(t) for t in towers)
    missing = [t.value for t in chosen if t not in encoder.towers]
    if missing:
        raise InputError(f"{encoder.name} has no {', '.join(missing)} tower to re-initialise; it has "
                         f"{', '.join(t.value for t in encoder.towers)}")
    def params(modalities):
        return {id(p) for m in modalities for p in getattr(encoder.towers[m], "module", nn.Module()).parameters()}

    if params(chosen) & params(set(encoder.towers) - set(chosen)):
        raise InputError(f"{encoder.name}'s towers share one module, so {', '.join(t.value for t in chosen)} alone "
                         f"cannot be re-initialised; use '{encoder.name}+random-init-{seed}' (every tower)")
    clone = copy.deepcopy(encoder)
    torch.manual_seed(seed)
    for modality in chosen:
        module = getattr(clone.towers[modality], "module", None)
        if module is None:
            raise TypeError(f"{encoder.name}: the {modality.value} tower has no .module to re-initialise")
        if hasattr(module, "_init_weights"):  # transformers models: their own initialiser, every submodule
            module.apply(module._init_weights)
        else:
            for sub in module.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
    what = "init" if set(chosen) == set(encoder.towers) else "-".join(t.value for t in chosen)
    clone.info = dataclasses.replace(encoder.info, name=f"{encoder.name}+random-{what}-{seed}", real=False,
                                     description=f"{encoder.info.description} (random {what}, seed {seed})")
    return clone
