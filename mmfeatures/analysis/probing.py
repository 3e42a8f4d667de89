"""k-sparse probing (Gurnee et al. 2023, as SAEBench runs it): can a label be read from k units alone?

For each class of a label (one against the rest, the largest ``max_classes`` classes), the k units whose
standardised means differ most between the class and the rest on a training split are kept, a logistic regression
is fitted on them, and its balanced accuracy is measured on held-out examples. The same probe on the model's
neurons is the baseline an SAE's latents must beat to claim that they isolate the label; a dense probe (every
unit, L2-regularised) is the ceiling.

>>> sparse_probe(latents, labels.language, ks=(1, 5))     # {1: 0.71, 5: 0.93}   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mmfeatures.errors import InputError


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * (1 - test_fraction)))
    return order[:cut], order[cut:]


def _fit_predict(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, l2: float) -> torch.Tensor:
    """Class-balanced logistic regression (LBFGS) on standardised columns; returns test scores."""
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    w = torch.zeros(x_train.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    pos = y_train.mean().clamp(1e-6, 1 - 1e-6)
    weight = torch.where(y_train > 0, 0.5 / pos, 0.5 / (1 - pos))
    opt = torch.optim.LBFGS([w, b], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(x_train @ w + b, y_train,
                                                                           reduction="none")).mean()
        loss = loss + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return x_test @ w + b


def _balanced_accuracy(score: torch.Tensor, y: torch.Tensor) -> float:
    pred = score > 0
    pos, neg = y > 0, y <= 0
    return 0.5 * (float(pred[pos].float().mean()) + float((~pred[neg]).float().mean()))


def sparse_probe(z, labels: Sequence, ks: Sequence[int] = (1, 2, 5, 10), *, dense: bool = False,
                 test_fraction: float = 0.3, max_classes: int = 20, min_examples: int = 10, seed: int = 0,
                 l2: float = 1e-3) -> dict:
    """Mean held-out balanced accuracy over one-vs-rest tasks of ``labels`` (one per row of ``z``, examples x
    units; None rows are left out), probing with each k in ``ks`` units (and every unit as 'dense' when ``dense``).
    Classes need ``min_examples`` in both splits' worth of rows. Returns {k: accuracy, 'dense': ...,
    'classes': n}."""
    z = torch.as_tensor(np.asarray(z), dtype=torch.float64)
    keep = np.array([label is not None for label in labels])
    if z.ndim != 2 or len(z) != len(labels):
        raise InputError(f"z is {tuple(z.shape)} and there are {len(labels)} labels; give one label per row")
    z, labels = z[torch.from_numpy(keep)], np.asarray([str(label) for label in np.asarray(labels, object)[keep]])
    if any(k < 1 for k in ks):
        raise InputError(f"ks = {tuple(ks)}; each k must be >= 1")
    values, counts = np.unique(labels, return_counts=True)
    classes = [c for c, n in sorted(zip(values, counts, strict=True), key=lambda t: -t[1])
               if n >= min_examples and len(labels) - n >= min_examples][:max_classes]
    if not classes:
        raise InputError(f"no class has {min_examples} examples and {min_examples} others among {len(labels)} "
                         "labelled rows; probe a label with larger classes or lower min_examples")
    train, test = _split(len(z), test_fraction, seed)
    train_t, test_t = torch.from_numpy(train), torch.from_numpy(test)
    zt, zs = z[train_t], z[test_t]
    std = zt.std(0).clamp_min(1e-12)
    scores: dict = {k: [] for k in ks}
    if dense:
        scores["dense"] = []
    for c in classes:
        y = torch.from_numpy((labels == c).astype(np.float64))
        yt, ys = y[train_t], y[test_t]
        if yt.sum() < 2 or ys.sum() < 1 or (1 - ys).sum() < 1:
            continue
        gap = ((zt[yt > 0].mean(0) - zt[yt <= 0].mean(0)) / std).abs().nan_to_num(0.0)
        order = gap.argsort(descending=True)
        for k in ks:
            cols = order[:min(k, z.shape[1])]
            scores[k].append(_balanced_accuracy(_fit_predict(zt[:, cols], yt, zs[:, cols], l2), ys))
        if dense:
            scores["dense"].append(_balanced_accuracy(_fit_predict(zt, yt, zs, l2), ys))
    out = {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()}
    out["classes"] = len(scores[ks[0]])
    return out
