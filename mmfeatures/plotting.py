"""Figures from analysis results (matplotlib). No widgets and no computation beyond reshaping.

Each function draws into a new figure (or the given ``ax``) and returns the figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _axes(ax=None, size=(6.0, 3.6)):
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=size, constrained_layout=True)
        return fig, ax
    return ax.figure, ax


def score_by_layer(rows: Sequence[Mapping], metric: str, *, series: str = "series", x: str = "layer",
                   title: str = "", ax=None):
    """Lines of ``value`` per ``x`` for each ``series``, with the null mean ± sd as a shaded band.

    ``rows``: dicts with keys series, x, metric, value, null_mean, null_sd."""
    fig, ax = _axes(ax)
    picked = [r for r in rows if r["metric"] == metric]
    for i, name in enumerate(dict.fromkeys(r[series] for r in picked)):
        part = sorted((r for r in picked if r[series] == name), key=lambda r: r[x])
        xs = [r[x] for r in part]
        colour = f"C{i}"
        ax.plot(xs, [r["value"] for r in part], "o-", color=colour, label=name)
        mean, sd = np.array([r["null_mean"] for r in part]), np.array([r["null_sd"] for r in part])
        ax.fill_between(xs, mean - sd, mean + sd, color=colour, alpha=0.15, lw=0)
        ax.plot(xs, mean, ":", color=colour, lw=1)
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} (dotted: null mean, band: ± 1 sd)")
    ax.legend(fontsize=8, frameon=False)
    return fig


def distributions(groups: Mapping[str, np.ndarray], *, xlabel: str, title: str = "", bins: int = 40,
                  range_: tuple[float, float] = (0.5, 1.0), ax=None):
    """Overlaid step histograms (density) of one score for several unit sets."""
    fig, ax = _axes(ax)
    for i, (name, values) in enumerate(groups.items()):
        values = np.asarray(values)
        values = values[np.isfinite(values)]
        ax.hist(values, bins=bins, range=range_, density=True, histtype="step", lw=1.5, color=f"C{i}",
                label=f"{name} (median {np.median(values):.2f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    return fig


def language_heatmap(values: Mapping[tuple[str, str], float], languages: Sequence[str], *, title: str = "",
                     ax=None):
    """Symmetric language x language heatmap (e.g. mean translation Jaccard per language pair)."""
    fig, ax = _axes(ax, (5.2, 4.6))
    index = {lang: i for i, lang in enumerate(languages)}
    grid = np.full((len(languages), len(languages)), np.nan)
    for (a, b), v in values.items():
        if a in index and b in index:
            grid[index[a], index[b]] = grid[index[b], index[a]] = v
    image = ax.imshow(grid, cmap="viridis")
    ax.set_xticks(range(len(languages)), languages, fontsize=7, rotation=90)
    ax.set_yticks(range(len(languages)), languages, fontsize=7)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title)
    return fig


def modality_histogram(counts: np.ndarray, edges: np.ndarray, *, title: str = "ModalityScore", ax=None):
    """Bar histogram of ModalityScore (0 = texts only, 1 = images only)."""
    fig, ax = _axes(ax)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C0", alpha=0.8)
    ax.set_xlabel("ModalityScore  (0: text only, 1: image only)")
    ax.set_ylabel("units")
    ax.set_title(title)
    return fig
