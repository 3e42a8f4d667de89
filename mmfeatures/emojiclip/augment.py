"""Batched, seeded image augmentation for training the emoji image tower (torch only, on the CPU).

Each view: the emoji cut out of its white render (the white connected to the border is background),
scaled, rotated and shifted, composited over a random background (white, a colour, a gradient or
low-frequency noise) with other emoji as clutter behind it, then colour-jittered, sometimes blurred, and
given pixel noise. Hue is never changed and nothing is mirrored: 'red heart' vs 'blue heart' and
'left arrow' vs 'right arrow' are different concepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    scale: tuple[float, float] = (0.45, 1.05)
    """Object size relative to the frame (log-uniform)."""
    rotate: float = 25.0
    """Maximum rotation in degrees, either way."""
    shift: float = 0.25
    """Maximum shift as a fraction of the frame, per axis."""
    white: float = 0.25
    """Probability of a plain white background (as in the clean renders)."""
    clutter: float = 0.5
    """Probability of each of ``max_clutter`` other emoji appearing behind the main one."""
    max_clutter: int = 2
    clutter_scale: tuple[float, float] = (0.2, 0.45)
    jitter: float = 0.3
    """Brightness and contrast factors in [1 - jitter, 1 + jitter]; saturation in [1 - jitter, 1 + jitter]."""
    blur: float = 0.2
    """Probability of a half-resolution round trip."""
    noise: float = 0.04
    """Maximum standard deviation of Gaussian pixel noise."""


def foreground_masks(images: np.ndarray, threshold: int = 245) -> np.ndarray:
    """(N, H, W) float32 alpha for RGB renders on white: 0 on near-white pixels connected to the border."""
    from scipy import ndimage

    white = (images >= threshold).all(-1)
    alpha = np.ones(white.shape, np.float32)
    for i, w in enumerate(white):
        labels, _ = ndimage.label(w)
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        alpha[i][np.isin(labels, edge[edge > 0])] = 0.0
    return alpha


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def _place(rgba: torch.Tensor, scale: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Warp (B, 4, S, S) RGBA: the object shrinks by ``scale``, turns by ``angle`` (radians), moves by ``shift``."""
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, -shift[:, 0] * cos + shift[:, 1] * sin], 1),
                         torch.stack([sin, cos, -shift[:, 0] * sin - shift[:, 1] * cos], 1)], 1)
    grid = F.affine_grid(theta, list(rgba.shape), align_corners=False)
    return F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _backgrounds(gen: torch.Generator, n: int, size: int, p_white: float) -> torch.Tensor:
    """(n, 3, size, size) in [0, 1]: white, a colour, a two-colour gradient or smooth noise."""
    kind = torch.multinomial(torch.tensor([p_white, (1 - p_white) / 3, (1 - p_white) / 3, (1 - p_white) / 3]),
                             n, replacement=True, generator=gen)
    c1, c2 = torch.rand(n, 3, 1, 1, generator=gen), torch.rand(n, 3, 1, 1, generator=gen)
    direction = torch.rand(n, generator=gen) * 2 * math.pi
    ramp = torch.linspace(-1, 1, size)
    xx, yy = ramp[None, None, :], ramp[None, :, None]
    w = ((xx * torch.cos(direction)[:, None, None] + yy * torch.sin(direction)[:, None, None]) + 1.4) / 2.8
    gradient = c1 + (c2 - c1) * w[:, None]
    noise = F.interpolate(torch.rand(n, 3, 5, 5, generator=gen), size=(size, size), mode="bicubic",
                          align_corners=False).clamp(0, 1)
    options = torch.stack([torch.ones(n, 3, size, size), c1.expand(n, 3, size, size), gradient, noise])
    return options[kind, torch.arange(n)]


def scaled(config: AugmentConfig, strength: float) -> AugmentConfig:
    """``config`` with every perturbation scaled by ``strength`` in [0, 1] (0: the clean render, centred)."""
    s = min(max(strength, 0.0), 1.0)
    return AugmentConfig(
        scale=(1 - s * (1 - config.scale[0]), 1 + s * (config.scale[1] - 1)), rotate=s * config.rotate,
        shift=s * config.shift, white=1 - s * (1 - config.white), clutter=s * config.clutter,
        max_clutter=config.max_clutter, clutter_scale=config.clutter_scale, jitter=s * config.jitter,
        blur=s * config.blur, noise=s * config.noise)


def augment(images: torch.Tensor, alpha: torch.Tensor, index: torch.Tensor, config: AugmentConfig,
            gen: torch.Generator) -> torch.Tensor:
    """Views of ``images[index]``: (B, 3, S, S) floats in [0, 1].

    ``images``: (N, 3, S, S) uint8 renders at the tower's input size; ``alpha``: (N, 1, S, S) from
    ``foreground_masks``. All randomness comes from ``gen``, so a seed fixes every view. ``scaled``
    weakens a config (the training curriculum)."""
    c = config
    n, size = len(index), images.shape[-1]
    out = _backgrounds(gen, n, size, c.white)
    for _ in range(c.max_clutter):
        other = torch.randint(0, len(images), (n,), generator=gen)
        rgba = torch.cat([images[other].float() / 255, alpha[other]], 1)
        placed = _place(rgba, _uniform(gen, n, *c.clutter_scale), _uniform(gen, n, -math.pi, math.pi),
                        _uniform(gen, 2 * n, -0.8, 0.8).view(n, 2))
        show = (torch.rand(n, generator=gen) < c.clutter).float()[:, None, None, None]
        a = placed[:, 3:] * show
        out = out * (1 - a) + placed[:, :3] * a
    log_lo, log_hi = math.log(c.scale[0]), math.log(c.scale[1])
    scale = torch.exp(_uniform(gen, n, log_lo, log_hi))
    angle = _uniform(gen, n, -c.rotate, c.rotate) * math.pi / 180
    shift = _uniform(gen, 2 * n, -c.shift, c.shift).view(n, 2)
    placed = _place(torch.cat([images[index].float() / 255, alpha[index]], 1), scale, angle, shift)
    a = placed[:, 3:]
    out = out * (1 - a) + placed[:, :3] * a
    # colour: brightness, contrast, saturation (never hue)
    bright = _uniform(gen, n, 1 - c.jitter, 1 + c.jitter)[:, None, None, None]
    contrast = _uniform(gen, n, 1 - c.jitter, 1 + c.jitter)[:, None, None, None]
    saturation = _uniform(gen, n, 1 - c.jitter, 1 + c.jitter)[:, None, None, None]
    out = out * bright
    grey = (out * torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
    out = grey + (out - grey) * saturation
    out = out.mean((1, 2, 3), keepdim=True) + (out - out.mean((1, 2, 3), keepdim=True)) * contrast
    blur = torch.rand(n, generator=gen) < c.blur
    if bool(blur.any()):
        small = F.interpolate(out[blur], scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
        out[blur] = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    sigma = _uniform(gen, n, 0, c.noise)[:, None, None, None]
    out = out + torch.randn(out.shape, generator=gen) * sigma
    return out.clamp(0, 1)
