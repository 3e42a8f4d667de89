"""Figures from analysis results (matplotlib). No widgets and no computation beyond reshaping.

Each function draws into a new figure (or the given ``ax``) and returns the figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def drawable(text: str) -> bool:
    """True when matplotlib can draw ``text`` faithfully: its fonts have every glyph (CJK, for one, needs a
    font such as Noto Sans CJK, or the labels are empty boxes) and no character is right-to-left (matplotlib
    does not shape Arabic or Hebrew)."""
    import unicodedata

    return set(text) <= _charset() and not any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


def _charset() -> set[str]:
    global _CHARS
    if _CHARS is None:
        import matplotlib
        from matplotlib import font_manager
        from matplotlib.ft2font import FT2Font

        _CHARS = {" "}
        for family in matplotlib.rcParams["font.sans-serif"]:
            try:
                _CHARS |= {chr(c) for c in FT2Font(font_manager.findfont(family, fallback_to_default=False))
                           .get_charmap()}
            except (OSError, RuntimeError, ValueError):
                continue
    return _CHARS


_CHARS: set[str] | None = None


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


def feature_heatmap(matrix: np.ndarray, rows: Sequence[str], columns: Sequence[str], *, title: str = "", ax=None):
    """Rows (e.g. languages) x columns (e.g. features) of mean activations."""
    matrix = np.asarray(matrix, float)
    fig, ax = _axes(ax, (max(4.0, 0.45 * len(columns) + 2), max(2.4, 0.32 * len(rows) + 1.4)))
    image = ax.imshow(matrix, cmap="magma", aspect="auto")
    ax.set_xticks(range(len(columns)), columns, fontsize=7, rotation=90)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8, label="mean activation")
    ax.set_title(title, fontsize=9)
    return fig


def toy_geometry(W: np.ndarray, importance: np.ndarray, *, title: str = "", ax=None):
    """Columns of a toy model's W (n_hidden = 2) as arrows in the hidden plane, coloured by importance."""
    import matplotlib.pyplot as plt

    W = np.asarray(W, float)
    if W.shape[0] != 2:
        raise ValueError(f"toy_geometry draws a 2-dimensional hidden space; W has {W.shape[0]} rows")
    fig, ax = _axes(ax, (3.4, 3.4))
    colours = plt.cm.viridis(np.linspace(0, 0.9, W.shape[1]))
    for i in range(W.shape[1]):
        ax.annotate("", xy=W[:, i], xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": colours[i], "lw": 2})
        ax.text(*(W[:, i] * 1.12), f"{i} ({importance[i]:.2f})", fontsize=7, ha="center", va="center")
    lim = max(1.3, 1.25 * float(np.abs(W).max()))
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
    ax.set_title(title or "feature directions W_i (label: importance)", fontsize=9)
    return fig


def top_examples(images: Sequence, image_values: np.ndarray, texts: Sequence[str], text_values: np.ndarray, *,
                 title: str = ""):
    """Top images (with activations) above a bar chart of top texts: one feature's two modalities."""
    import matplotlib.pyplot as plt

    n = max(len(images), 1)
    fig = plt.figure(figsize=(max(6.0, 1.2 * n), 2.0 + 0.3 * len(texts)), constrained_layout=True)
    grid = fig.add_gridspec(2, n, height_ratios=[1.2, 0.3 * max(len(texts), 1) + 0.4])
    for i, (img, value) in enumerate(zip(images, image_values, strict=True)):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(np.asarray(img))
        ax.set_title(f"{value:.2f}", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    order = np.arange(len(texts))[::-1]
    ax.barh(order, np.asarray(text_values, float), color="C1")
    ax.set_yticks(order, [t[:60] for t in texts], fontsize=8)
    ax.set_xlabel("activation")
    fig.suptitle(title, fontsize=10)
    return fig


def match_scatter(x: np.ndarray, y: np.ndarray, top_x: Sequence[str], top_y: Sequence[str], *, title: str = "",
                  labels: tuple[str, str] = ("A", "B")):
    """Scatter of two matched units over shared rows, beside both units' top rows."""
    import matplotlib.pyplot as plt

    fig, (ax, side) = plt.subplots(1, 2, figsize=(9.5, 3.6), constrained_layout=True,
                                   gridspec_kw={"width_ratios": [1, 1.3]})
    ax.scatter(x, y, s=6, alpha=0.5)
    ax.set(xlabel=labels[0], ylabel=labels[1], title=title)
    side.axis("off")
    lines = [f"top of {labels[0]}:"] + [f"  {t[:55]}" for t in top_x] + ["", f"top of {labels[1]}:"] + \
            [f"  {t[:55]}" for t in top_y]
    side.text(0, 1, "\n".join(lines), va="top", fontsize=8, family="monospace")
    return fig


def curves(series: Mapping[str, Mapping[float, float]], mark: float | None = None, *, xlabel: str, ylabel: str,
           title: str = "", xscale: str = "linear", ax=None):
    """One line per series over shared x values, with ``mark`` as a vertical line (``xscale``: 'linear' or 'log')."""
    fig, ax = _axes(ax)
    for i, (name, curve) in enumerate(series.items()):
        xs = sorted(curve)
        ax.plot(xs, [curve[x] for x in xs], "o-", color=f"C{i}", label=name)
    if mark is not None:
        ax.axvline(mark, color="grey", ls="--", lw=1)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xscale=xscale)
    ax.legend(fontsize=8, frameon=False)
    return fig


def dimensionality(sparsities: np.ndarray, d_star: np.ndarray, d_i: np.ndarray, alive: np.ndarray, *,
                   fractions: Sequence[float] = (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8), title: str = "", ax=None):
    """Toy models: D* per sparsity level (line) over each alive feature's D_i (grey), with the paper's fractions."""
    fig, ax = _axes(ax)
    x = 1 / (1 - np.asarray(sparsities, float))
    for level in range(len(x)):
        keep = np.asarray(alive[level], bool)
        ax.scatter(np.full(keep.sum(), x[level]), np.asarray(d_i[level])[keep], s=6, color="grey", alpha=0.4)
    ax.plot(x, d_star, "o-", color="C0", label="D* (dimensions per feature)")
    for f in fractions:
        ax.axhline(f, color="C1", lw=0.6, ls=":")
    ax.set(xscale="log", xlabel="1 / (1 - S)", ylabel="dimensions",
           title=title or "D* falls with sparsity and sticks at 1/2; grey: D_i of each feature")
    ax.legend(frameon=False)
    return fig


def gallery(images: Sequence, captions: Sequence[str], *, title: str = ""):
    """A row of images, each above a (multi-line) caption: e.g. several features' top pictures and names."""
    import matplotlib.pyplot as plt

    n = max(len(images), 1)
    lines = max((c.count("\n") + 1 for c in captions), default=1)
    fig, axes = plt.subplots(1, n, figsize=(2.3 * n, 2.4 + 0.2 * lines), constrained_layout=True, squeeze=False)
    for ax, img, caption in zip(axes[0], images, captions, strict=True):
        ax.imshow(np.asarray(img))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(caption, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def grouped_bars(values: Mapping[str, Mapping[str, float]], *, ylabel: str, title: str = "", ax=None):
    """``values[item][measure]`` as bars: one group per item (e.g. an SAE), one coloured bar per measure. Items
    with no order between them get bars, never a line joining them."""
    items = list(values)
    measures = list(dict.fromkeys(m for v in values.values() for m in v))
    fig, ax = _axes(ax, (max(5.0, 0.9 * len(items) * max(len(measures), 1) / 3 + 2.0), 3.6))
    width = 0.8 / max(len(measures), 1)
    for j, m in enumerate(measures):
        ax.bar(np.arange(len(items)) + (j - (len(measures) - 1) / 2) * width,
               [values[i].get(m, np.nan) for i in items], width, color=f"C{j}", label=m)
    ax.set_xticks(range(len(items)), items, fontsize=8, rotation=30 if len(items) > 3 else 0, ha="right"
                  if len(items) > 3 else "center")
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=8, frameon=False)
    return fig


def activation_bars(values: np.ndarray, names: Sequence[str], groups: Sequence[str], *, ylabel: str = "activation",
                    title: str = "", ax=None):
    """One bar per row (e.g. a sentence, labelled by its language), coloured by its group (e.g. which sentence)."""
    from matplotlib.patches import Patch

    values = np.asarray(values, float)
    fig, ax = _axes(ax, (max(5.0, 0.3 * len(values) + 1.5), 3.2))
    colours = {g: f"C{i}" for i, g in enumerate(dict.fromkeys(groups))}
    ax.bar(np.arange(len(values)), values, color=[colours[g] for g in groups])
    ax.set_xticks(range(len(values)), list(names), fontsize=7, rotation=90)
    ax.legend(handles=[Patch(color=c, label=g) for g, c in colours.items()], fontsize=8, frameon=False)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return fig


def feature_density(density: np.ndarray, *, metrics: Mapping[str, float] | None = None, bins: int = 40,
                    range_: tuple[float, float] = (-6.0, 0.0), title: str = "", ax=None):
    """Histogram of log10 firing frequency over the latents that fire (``density``: fraction of rows each latent
    fires on), noting how many never fire and the given ``metrics``."""
    density = np.asarray(density, float)
    fig, ax = _axes(ax)
    firing = density[density > 0]
    ax.hist(np.log10(firing), bins=bins, range=range_, color="C0", alpha=0.8)
    notes = [f"never fire: {len(density) - len(firing)} of {len(density)}"]
    notes += [f"{name}: {value:.3g}" for name, value in (metrics or {}).items()]
    ax.text(0.02, 0.97, "\n".join(notes), transform=ax.transAxes, va="top", fontsize=8, family="monospace")
    ax.set(xlabel="log10 firing frequency", ylabel="latents", title=title)
    return fig
