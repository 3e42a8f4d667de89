"""Activations made from a known dictionary, and how well an SAE recovers it.

``SyntheticFeatures(SyntheticConfig(...))`` plants ``n_features`` unit directions in ``d`` dimensions (more
features than dimensions: superposition). Each row fires a Zipf-distributed set of them (feature i fires with
probability proportional to (i + 1)^-zipf_exponent, ``mean_active`` per row on average), with

- a hierarchy: the first ``n_parents`` features each have ``children_per_parent`` children that fire only when
  their parent does (the setting where SAEs absorb a parent into its children, Chanin et al. 2024);
- correlation: features outside the hierarchy's children, in groups of ``group_size``, share a Gaussian factor
  (a copula with correlation ``correlation``), which keeps each feature's firing rate and makes the group fire
  together;
- magnitudes 1 + ``magnitude_std`` N(0, 1) (clipped at 0.05) and Gaussian noise of std ``noise`` per dimension.

``score(sae, data)`` compares an SAE with the truth on fresh rows: dictionary MCC (mean cosine of one-to-one
matched decoder rows and true directions), precision and recall at a cosine threshold, explained variance, L0,
dead and dense latents, and absorption. In the spirit of SAELens's SynthSAEBench, at CPU sizes. (Not to be confused
with ``mmfeatures.analysis.synthetic``, which plants concept and language directions to test the analyses.)

>>> data = SyntheticFeatures(SyntheticConfig(n_features=1024, d=64))
>>> x, codes = data.sample(1000, seed=1)                 # (1000, 64) activations, (1000, 1024) true codes
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from mmfeatures.errors import InputError

COSINE = 0.9
"""A learnt decoder row within this cosine of a true direction recovers it (precision and recall)."""
DENSE = 0.1
"""A latent firing on more than this fraction of rows is dense."""


@dataclass(frozen=True)
class SyntheticConfig:
    """The planted dictionary and its firing statistics (seeded: the same config gives the same data)."""

    n_features: int = 4096
    d: int = 256
    mean_active: float = 16.0
    """Expected features firing per row."""
    zipf_exponent: float = 0.5
    """Feature i fires with probability proportional to (i + 1)^-zipf_exponent."""
    n_parents: int = 128
    children_per_parent: int = 4
    child_given_parent: float = 0.3
    """P(child fires | parent fires), for each child."""
    group_size: int = 4
    correlation: float = 0.5
    """Correlation of the Gaussian factor shared within a group of features (0: independent)."""
    magnitude_std: float = 0.3
    noise: float = 0.02
    seed: int = 0

    def __post_init__(self):
        hierarchy = self.n_parents * (1 + self.children_per_parent)
        if self.n_features < 2 or self.d < 2 or hierarchy > self.n_features:
            raise InputError(f"n_features = {self.n_features}, d = {self.d}, and the hierarchy needs "
                             f"n_parents x (1 + children_per_parent) = {hierarchy} features; give n_features >= "
                             f"{max(hierarchy, 2)} and d >= 2")
        if not 0 < self.mean_active < self.n_features / 2:
            raise InputError(f"mean_active = {self.mean_active}; give 0 < mean_active < n_features / 2")
        if not (0 <= self.correlation < 1 and 0 < self.child_given_parent <= 1):
            raise InputError(f"correlation = {self.correlation} (give [0, 1)), child_given_parent = "
                             f"{self.child_given_parent} (give (0, 1])")

    @property
    def spec(self) -> str:
        """The model name of its stores: 'synthetic:' and the fields that differ from the defaults.

        >>> SyntheticConfig(n_features=1024, d=64).spec
        'synthetic:n_features=1024,d=64'
        """
        changed = [f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name) != f.default]
        return "synthetic:" + (",".join(changed) or "default")

    @classmethod
    def from_spec(cls, spec: str) -> SyntheticConfig | None:
        """The config a store's model name ``spec`` was written from, or None if it is not a synthetic one."""
        if not spec.startswith("synthetic:"):
            return None
        body = spec.removeprefix("synthetic:")
        types = {f.name: type(f.default) for f in fields(cls)}
        try:
            pairs = [part.split("=", 1) for part in body.split(",")] if body != "default" else []
            return cls(**{name: types[name](value) for name, value in pairs})
        except (KeyError, ValueError) as e:
            raise InputError(f"{spec!r} is not a synthetic config this version reads ({e}); rewrite the store "
                             "with synthetic_store") from None


class SyntheticFeatures:
    """The ground truth of one ``SyntheticConfig``: ``dictionary`` (n_features x d, unit rows), ``probability``
    (each feature's firing rate), ``parent`` (-1, or the feature a child depends on) and ``group``."""

    def __init__(self, config: SyntheticConfig = SyntheticConfig()):
        c = self.config = config
        rng = np.random.default_rng(c.seed)
        dictionary = rng.standard_normal((c.n_features, c.d))
        self.dictionary = (dictionary / np.linalg.norm(dictionary, axis=1, keepdims=True)).astype(np.float32)
        weights = (np.arange(c.n_features) + 1.0) ** -c.zipf_exponent
        rate = weights / weights.sum() * c.mean_active
        self.parent = np.full(c.n_features, -1)
        children = np.arange(c.n_parents, c.n_parents * (1 + c.children_per_parent))
        self.parent[children] = (children - c.n_parents) // c.children_per_parent
        rate = np.minimum(rate, 0.5)
        rate[children] = rate[self.parent[children]] * c.child_given_parent    # marginal of a child
        self.probability = rate
        self.group = rng.permutation(c.n_features) // c.group_size

    @property
    def children(self) -> np.ndarray:
        return np.flatnonzero(self.parent >= 0)

    def sample(self, n: int, seed: int = 1, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` rows: activations (n x d, float32) and the true codes (a sparse n x n_features COO tensor of
        the planted magnitudes)."""
        from scipy.special import ndtri

        c = self.config
        rng = np.random.default_rng([c.seed, seed])
        conditional = self.probability.copy()
        kids = self.children
        conditional[kids] = c.child_given_parent          # children fire given their parent
        cut = ndtri(conditional)
        free = self.parent < 0                  # children depend on their parent alone, so their rates hold
        xs, rows, cols, vals = [], [], [], []
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            shared = rng.standard_normal((m, self.group.max() + 1))[:, self.group]
            z = rng.standard_normal((m, c.n_features))
            z[:, free] = np.sqrt(c.correlation) * shared[:, free] + np.sqrt(1 - c.correlation) * z[:, free]
            fire = z < cut
            fire[:, kids] &= fire[:, self.parent[kids]]
            r, f = np.nonzero(fire)
            v = np.maximum(1 + c.magnitude_std * rng.standard_normal(len(r)), 0.05).astype(np.float32)
            x = _scatter_rows(r, f, v, m, self.dictionary).astype(np.float32)
            x += c.noise * rng.standard_normal((m, c.d)).astype(np.float32)
            xs.append(x), rows.append(r + start), cols.append(f), vals.append(v)
        index = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)]))
        codes = torch.sparse_coo_tensor(index, torch.from_numpy(np.concatenate(vals)), (n, c.n_features),
                                        check_invariants=False).coalesce()
        return torch.from_numpy(np.concatenate(xs)), codes

    def __repr__(self) -> str:
        return f"SyntheticFeatures({', '.join(f'{k}={v}' for k, v in asdict(self.config).items())})"


def _scatter_rows(rows: np.ndarray, features: np.ndarray, values: np.ndarray, m: int,
                  dictionary: np.ndarray) -> np.ndarray:
    """Sum of values x dictionary rows per row, as one sparse x dense product."""
    from scipy import sparse

    return np.asarray(sparse.csr_matrix((values, (rows, features)), shape=(m, len(dictionary))) @ dictionary)


@torch.no_grad()
def score(sae, data: SyntheticFeatures, n: int = 20_000, seed: int = 12345, cosine: float = COSINE) -> dict:
    """How well ``sae`` recovers ``data``'s planted features, on ``n`` fresh rows (``seed`` other than the
    training rows'):

    - ``mcc``: mean cosine between each true direction and the decoder row matched to it one-to-one (Hungarian
      on cosine; 1 = every feature recovered exactly; a random decoder scores about 3 / sqrt(d));
    - ``recall``: true features with a decoder row within ``cosine``; ``precision``: live latents within
      ``cosine`` of a true feature;
    - ``explained_variance``, ``l0`` (measured), ``dead_fraction`` (never fire on these rows),
      ``dense_fraction`` (fire on more than ``DENSE`` of them);
    - ``absorption``: over children whose parent is recovered, how much more often the parent's latent stays off
      when the child fires than when the parent fires alone (0 = no absorption, 1 = the child's latent always
      takes the parent's place)."""
    from scipy.optimize import linear_sum_assignment

    w = sae.W_dec.detach().float()
    w = (w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()
    cos = data.dictionary @ w.T                                       # (n_features, d_sae)
    feature, latent = linear_sum_assignment(cos, maximize=True)
    x, codes = data.sample(n, seed)
    z = sae.encode(x)
    z = z.to_dense() if z.is_sparse else z
    recon = sae.decode(z)
    fires = z > 0
    rate = fires.float().mean(0).numpy()
    alive = rate > 0
    best_latent = cos.argmax(1)
    return {"mcc": float(cos[feature, latent].mean()),
            "recall": float((cos.max(1) >= cosine).mean()),
            "precision": float((cos[:, alive].max(0) >= cosine).mean()) if alive.any() else 0.0,
            "explained_variance": float(1 - (recon - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()),
            "l0": float(fires.sum(1).float().mean()), "dead_fraction": float((~alive).mean()),
            "dense_fraction": float((rate > DENSE).mean()),
            "absorption": _absorption(data, codes, fires.numpy(), best_latent, cos.max(1) >= cosine)}


def _absorption(data: SyntheticFeatures, codes: torch.Tensor, fires: np.ndarray, best_latent: np.ndarray,
                recovered: np.ndarray) -> float:
    """Mean over children (with a recovered parent and enough rows) of P(parent latent off | child on) minus
    P(parent latent off | parent on, no child on), floored at 0; NaN when no child qualifies."""
    idx = codes.indices().numpy()
    true = np.zeros((codes.shape[0], codes.shape[1]), dtype=bool)
    true[idx[0], idx[1]] = True
    rates = []
    for p in np.flatnonzero(recovered[: data.config.n_parents]):
        kids = np.flatnonzero(data.parent == p)
        on = fires[:, best_latent[p]]
        alone = true[:, p] & ~true[:, kids].any(1)
        if alone.sum() < 20:
            continue
        base = 1 - on[alone].mean()
        for kid in kids:
            with_kid = true[:, kid]
            if with_kid.sum() >= 20:
                rates.append(max(0.0, (1 - on[with_kid].mean()) - base))
    return float(np.mean(rates)) if rates else float("nan")


def synthetic_store(data: SyntheticFeatures, n: int, *, seed: int = 1, store_dir=None, rows_per_example: int = 256):
    """``n`` rows of ``data`` (sample ``seed``) written as a token store that ``train`` reads (pooling 'none',
    examples of ``rows_per_example`` rows); keyed by the config, n and seed, so it is written once. Its model
    name is the config's ``spec``, from which ``mmfeatures eval`` rebuilds the truth to score an SAE against."""
    from mmfeatures.activations import write_store

    x = data.sample(n, seed)[0].numpy()
    starts = range(0, n, rows_per_example)
    return write_store((x[s:s + rows_per_example] for s in starts), [{"id": f"rows-{s}"} for s in starts],
                       model=data.config.spec, site="text.layer.0.resid",
                       source=f"mmfeatures.sae.synthetic {asdict(data.config)} n={n} seed={seed}", pooling="none",
                       store_dir=store_dir)
