"""Toy models of superposition (Elhage et al. 2022), trained many instances at once.

Each instance is x' = ReLU(W^T W x + b), with W of shape (hidden m, features n). It is trained on
sparse synthetic inputs: each feature is U[0, 1] with probability 1 - S and 0 otherwise. The loss is
the importance-weighted squared error, sum_i I_i (x_i - x'_i)^2, averaged over the batch.

>>> result = train_toy(ToyConfig(n_features=5, n_hidden=2), sparsities=[0.0, 0.9])   # doctest: +SKIP
>>> dimensions_per_feature(result.W), feature_dimensionality(result.W)            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mmfeatures.errors import InputError


@dataclass(frozen=True)
class ToyConfig:
    n_features: int = 5
    n_hidden: int = 2
    importance_decay: float = 1.0
    """Feature i has importance decay**i (0.9 in the paper's small example; 1.0 = uniform)."""
    steps: int = 10_000
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if self.n_features < 1 or self.n_hidden < 1 or self.steps < 1 or self.batch_size < 1:
            raise InputError(f"n_features, n_hidden, steps and batch_size must be positive: {self}")


@dataclass(frozen=True)
class ToyResult:
    """Trained instances: W (instances, m, n), b (instances, n), their sparsities and final losses."""

    W: np.ndarray
    b: np.ndarray
    sparsity: np.ndarray
    importance: np.ndarray
    loss: np.ndarray


class ToyModel(nn.Module):
    def __init__(self, n_instances: int, cfg: ToyConfig):
        super().__init__()
        g = torch.Generator().manual_seed(cfg.seed)
        std = (2.0 / (cfg.n_hidden + cfg.n_features)) ** 0.5             # Xavier-normal per instance
        w = torch.randn(n_instances, cfg.n_hidden, cfg.n_features, generator=g) * std
        self.W = nn.Parameter(w)
        self.b = nn.Parameter(torch.zeros(n_instances, cfg.n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, instances, n) -> (batch, instances, n)."""
        xi = x.transpose(0, 1)                                              # (instances, batch, n)
        hidden = torch.bmm(xi, self.W.transpose(1, 2))                      # (instances, batch, m)
        return torch.relu(torch.bmm(hidden, self.W) + self.b[:, None, :]).transpose(0, 1)


def sample(batch: int, sparsity: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, instances, n): U[0, 1] features, each present with probability 1 - S of its instance."""
    u = torch.rand(batch, len(sparsity), n, generator=generator)
    keep = (1 - sparsity)[None, :, None]
    # one draw for both: given u < 1 - S (present), u / (1 - S) is again U[0, 1)
    return torch.where(u < keep, u / keep, torch.zeros(()))


def train_toy(cfg: ToyConfig, sparsities: Sequence[float]) -> ToyResult:
    """Train one instance per sparsity (batched over instances) with AdamW."""
    s = torch.as_tensor(list(sparsities), dtype=torch.float32)
    if len(s) == 0 or (s < 0).any() or (s >= 1).any():
        raise InputError(f"sparsities must be in [0, 1) and non-empty; got {list(sparsities)}")
    device = torch.device(cfg.device)
    model = ToyModel(len(s), cfg).to(device)
    importance = cfg.importance_decay ** torch.arange(cfg.n_features, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    imp = importance.to(device)
    loss_i = torch.zeros(len(s))
    for _ in range(cfg.steps):
        x = sample(cfg.batch_size, s, cfg.n_features, g).to(device)
        per_instance = (imp * (x - model(x)) ** 2).sum(-1).mean(0)      # (instances,)
        opt.zero_grad(set_to_none=True)
        per_instance.sum().backward()
        opt.step()
        loss_i = per_instance.detach().cpu()
    return ToyResult(model.W.detach().cpu().numpy(), model.b.detach().cpu().numpy(), s.numpy(),
                     importance.numpy(), loss_i.numpy())


def dimensions_per_feature(W: np.ndarray) -> np.ndarray:
    """D* = m / ||W||_F^2 per instance (W: instances x m x n)."""
    W = np.asarray(W)
    return W.shape[1] / (W ** 2).sum(axis=(1, 2))


def feature_dimensionality(W: np.ndarray) -> np.ndarray:
    """D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2 per instance and feature (instances x n)."""
    W = np.asarray(W)
    norms = np.linalg.norm(W, axis=1)                                   # (instances, n)
    unit = W / np.maximum(norms[:, None, :], 1e-12)
    overlap = np.einsum("imn,imk->ink", unit, W) ** 2                   # (W_i_hat . W_j)^2
    return norms ** 2 / np.maximum(overlap.sum(-1), 1e-12)


def superposition(W: np.ndarray) -> np.ndarray:
    """sum_{j != i} (W_i_hat . W_j)^2 per instance and feature: how much other features share i's direction."""
    W = np.asarray(W)
    norms = np.linalg.norm(W, axis=1)
    unit = W / np.maximum(norms[:, None, :], 1e-12)
    overlap = np.einsum("imn,imk->ink", unit, W) ** 2
    return overlap.sum(-1) - np.einsum("inn->in", overlap)
