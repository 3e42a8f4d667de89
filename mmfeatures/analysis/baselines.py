"""Baselines a learned dictionary must beat: the same width and sparsity with nothing learnt.

``RandomDirections`` stands where an SAE stands (``encode_rows``, ``unit_activations``): ``width`` random unit
directions through the rows' mean, each row keeping its ``k`` largest projections (ReLU'd); with ``k`` None, all
of them, signed (the baseline for neurons: a random basis of the same space). If SAE features are no more
multilingual, concept-selective or shared than these, the SAE has not found anything the geometry of the
activations did not already give.
"""

from __future__ import annotations

import numpy as np
import torch

from mmfeatures.errors import InputError


class RandomDirections:
    """An SAE-shaped baseline with no learning (see the module docstring)."""

    def __init__(self, mean: np.ndarray | torch.Tensor, width: int, k: int | None, seed: int = 0):
        if width < 1 or (k is not None and not 1 <= k <= width):
            raise InputError(f"random directions need 1 <= k <= width; got width {width}, k {k}")
        self.mean = torch.as_tensor(np.asarray(mean, np.float32)).flatten()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(len(self.mean), width, generator=g)
        self.W = w / w.norm(dim=0, keepdim=True)
        self.k, self.seed = k, seed

    @property
    def d_in(self) -> int:
        return len(self.mean)

    @property
    def d_sae(self) -> int:
        return self.W.shape[1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Top-k ReLU'd projections, or with ``k`` None every signed projection (the baseline for neurons)."""
        proj = (x.float() - self.mean) @ self.W
        if self.k is None:
            return proj
        val, idx = proj.topk(self.k, dim=1)
        return torch.zeros_like(proj).scatter(1, idx, val.relu())

    def __repr__(self) -> str:
        return f"RandomDirections(d_in={self.d_in}, width={self.d_sae}, k={self.k}, seed={self.seed})"


class NeuronBasis(RandomDirections):
    """The neurons read the way an SAE's latents are: the signed basis (each coordinate and its negation, 2 d
    units) through ``mean``, each row keeping its ``k`` largest (ReLU'd). Features and neurons compared under this
    readout differ in what was learnt, not in how they are read (sparse, one-signed, max-pooled)."""

    def __init__(self, mean: np.ndarray | torch.Tensor, k: int):
        d = len(np.asarray(mean).ravel())
        if not 1 <= k <= 2 * d:
            raise InputError(f"the neuron basis has {2 * d} units; k must be 1..{2 * d}, got {k}")
        self.mean = torch.as_tensor(np.asarray(mean, np.float32)).flatten()
        eye = torch.eye(d)
        self.W = torch.cat([eye, -eye], 1)
        self.k, self.seed = k, -1

    def __repr__(self) -> str:
        return f"NeuronBasis(d_in={self.d_in}, width={self.d_sae}, k={self.k})"
