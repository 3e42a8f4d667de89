"""ipywidgets panels for the notebooks, built on analysis results and ``plotting`` (no analysis here).

Every builder returns a ``Panel``: ``panel.widget`` is what a notebook displays, ``panel.controls`` the
named ipywidgets, and ``panel.state`` what the last render drew (the figure's data), so a test can set a
control's value and check what changed, with no browser. Impossible selections (no language chosen, a
feature out of range) render a short message instead of a figure.

>>> panel = concept_heatmap(z, labels)                         # doctest: +SKIP
>>> panel.controls["concept"].value = "dog"; panel.state["matrix"].shape   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmfeatures import plotting
from mmfeatures.analysis.consistency import concept_features
from mmfeatures.analysis.labels import Labels


@dataclass
class Panel:
    widget: Any
    controls: dict[str, Any]
    output: Any
    state: dict[str, Any] = field(default_factory=dict)
    render: Callable[[], None] = lambda: None

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def _panel(controls: dict[str, Any], draw: Callable[[dict[str, Any], dict[str, Any]], Any]) -> Panel:
    """Wire ``controls`` so any change re-runs ``draw(values, state) -> Figure | str`` into one Output; ``draw``
    records what it drew in ``state``."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    output = w.Output()
    panel = Panel(None, controls, output)

    def render(*_):
        values = {name: c.value for name, c in controls.items()}
        panel.state.clear()
        result = draw(values, panel.state)
        output.clear_output(wait=True)
        with output:
            if isinstance(result, str):
                panel.state["message"] = result
                print(result)
            else:
                display(result)
                if isinstance(result, plt.Figure):
                    plt.close(result)

    for c in controls.values():
        c.observe(render, names="value")
    panel.widget = w.VBox([w.VBox(list(controls.values())), output])
    panel.render = render
    render()
    return panel


def concept_heatmap(z: np.ndarray, labels: Labels, *, top: int = 12, concepts: Sequence[str] | None = None,
                    languages: Sequence[str] | None = None, concept: str | None = None) -> Panel:
    """Pick a concept and languages: a heatmap of the concept's ``top`` features (mean activation per language).

    Features are ranked by their mean activation on the concept's rows minus that on all other rows."""
    import ipywidgets as w

    z = np.asarray(z, np.float32)
    concepts = sorted(set(labels.concept)) if concepts is None else list(concepts)
    all_langs = [lang for lang in dict.fromkeys(labels.language) if lang]
    languages = all_langs if languages is None else list(languages)
    controls = {
        "concept": w.Dropdown(options=concepts, value=concept or concepts[0], description="concept"),
        "languages": w.SelectMultiple(options=all_langs, value=tuple(languages), description="languages",
                                      rows=min(8, len(all_langs))),
    }

    def draw(v, state):
        langs = list(v["languages"])
        if not langs:
            return "Select at least one language."
        features, matrix, _ = concept_features(z, labels, v["concept"], langs, top)
        state.update(concept=v["concept"], languages=langs, features=features, matrix=matrix)
        return plotting.feature_heatmap(matrix, langs, [f"f{i}" for i in features],
                                        title=f"Top features for '{v['concept']}', mean activation by language")

    return _panel(controls, draw)


def toy_geometry(weights: Mapping[float, np.ndarray], importance: np.ndarray) -> Panel:
    """A sparsity slider over trained toy models: each feature's direction W_i in the hidden plane."""
    import ipywidgets as w

    values = sorted(weights)
    slider = w.SelectionSlider(options=[(f"{s:.3g}", s) for s in values], value=values[0],
                               description="sparsity", continuous_update=False)

    def draw(v, state):
        W = np.asarray(weights[v["sparsity"]])
        state.update(sparsity=v["sparsity"], W=W)
        return plotting.toy_geometry(W, importance, title=f"S = {v['sparsity']:.3g}")

    return _panel({"sparsity": slider}, draw)


def feature_browser(z: np.ndarray, labels: Labels, images: Mapping[str, Any], texts: Mapping[str, str], *,
                    feature: int = 0, n_images: int = 6, n_texts: int = 8, languages: Sequence[str] = ()) -> Panel:
    """A feature index in, its top images and top texts side by side (``images``/``texts`` by example id)."""
    import ipywidgets as w

    z = np.asarray(z, np.float32)
    img_rows = np.flatnonzero(labels.mask(modality="image"))
    txt_rows = np.flatnonzero(labels.mask(modality="text"))
    langs = list(languages) or [lang for lang in dict.fromkeys(labels.language[txt_rows]) if lang]
    controls = {"feature": w.BoundedIntText(value=feature, min=0, max=z.shape[1] - 1, description="feature"),
                "languages": w.SelectMultiple(options=langs, value=tuple(langs[:4]), description="languages",
                                              rows=min(6, len(langs)))}

    def draw(v, state):
        f, chosen = v["feature"], list(v["languages"])
        if not chosen:
            return "Select at least one language."
        top_img = img_rows[np.argsort(-z[img_rows, f])[:n_images]]
        rows = txt_rows[np.isin(labels.language[txt_rows], chosen)]
        top_txt = rows[np.argsort(-z[rows, f])[:n_texts]]
        state.update(feature=f, images=[labels.example_id[i] for i in top_img],
                     texts=[texts[labels.example_id[i]] for i in top_txt])
        return plotting.top_examples(
            [images[labels.example_id[i]] for i in top_img], z[top_img, f],
            [f"[{labels.language[i]}] {texts[labels.example_id[i]]}" for i in top_txt], z[top_txt, f],
            title=f"feature {f}: top images and top texts")

    return _panel(controls, draw)


def match_explorer(z_a: np.ndarray, z_b: np.ndarray, match: np.ndarray, r: np.ndarray, texts: Sequence[str], *,
                   names: tuple[str, str] = ("A", "B"), feature: int = 0, n_top: int = 5) -> Panel:
    """A feature of model A in; its matched feature in B (``match[f]``, correlation ``r[f]``), a scatter of
    both over the shared rows, and the top rows of each."""
    import ipywidgets as w

    controls = {"feature": w.BoundedIntText(value=feature, min=0, max=z_a.shape[1] - 1, description=f"{names[0]} feature")}

    def draw(v, state):
        f = v["feature"]
        g = int(match[f])
        if g < 0:
            return f"{names[0]} feature {f} has no match (dead or constant)."
        x, y = z_a[:, f], z_b[:, g]
        state.update(feature=f, match=g, r=float(r[f]), top_a=[texts[i] for i in np.argsort(-x)[:n_top]],
                     top_b=[texts[i] for i in np.argsort(-y)[:n_top]])
        return plotting.match_scatter(x, y, state["top_a"], state["top_b"],
                                      title=f"{names[0]} f{f} ↔ {names[1]} f{g}: r = {r[f]:.2f}",
                                      labels=(f"{names[0]} feature {f}", f"{names[1]} feature {g}"))

    return _panel(controls, draw)


def curve_slider(curves: Mapping[str, Mapping[float, float]], *, xlabel: str, ylabel: str, title: str,
                 value: float | None = None) -> Panel:
    """A slider over x (e.g. clamp strength): every series' curve with the chosen x marked and its values shown."""
    import ipywidgets as w

    xs = sorted(next(iter(curves.values())))
    slider = w.SelectionSlider(options=[(f"{x:g}", x) for x in xs], value=xs[-1] if value is None else value,
                               description=xlabel[:12], continuous_update=False)

    def draw(v, state):
        x = v["x"]
        state.update(x=x, values={name: c[x] for name, c in curves.items()})
        return plotting.curves(curves, x, xlabel=xlabel, ylabel=ylabel, title=title)

    return _panel({"x": slider}, draw)


def unit_bars(z: np.ndarray, labels: Labels, units: Sequence[int], *, unit: int | None = None,
              color_by: str = "concept", ylabel: str = "activation") -> Panel:
    """A dropdown over ``units`` (e.g. the latents shared by a sentence's translations): the chosen unit's
    activation on every row, one bar per row labelled by its language and coloured by ``color_by``."""
    import ipywidgets as w

    z = np.asarray(z, np.float32)
    units = [int(u) for u in units]
    first = unit if unit is not None else (units[0] if units else None)
    controls = {"unit": w.Dropdown(options=[(f"unit {u}", u) for u in units], value=first, description="unit")}
    names = [lang or "-" for lang in labels.language]
    groups = [str(g) for g in getattr(labels, color_by)]

    def draw(v, state):
        u = v["unit"]
        if u is None:
            return "No units to show."
        state.update(unit=u, values=z[:, u])
        return plotting.activation_bars(z[:, u], names, groups, ylabel=ylabel,
                                        title=f"unit {u} on each row, coloured by {color_by}")

    return _panel(controls, draw)


def sae_density(densities: Mapping[str, np.ndarray], metrics: Mapping[str, Mapping[str, float]] | None = None, *,
                sae: str | None = None) -> Panel:
    """A dropdown over a sweep's SAEs (by name): the chosen SAE's feature density, the fraction of rows each
    latent fires on, as a histogram, with its ``metrics`` (e.g. NMSE, L0, dead fraction) noted."""
    import ipywidgets as w

    names = list(densities)
    controls = {"sae": w.Dropdown(options=names, value=sae or names[0], description="SAE")}

    def draw(v, state):
        name = v["sae"]
        shown = dict((metrics or {}).get(name, {}))
        state.update(sae=name, density=np.asarray(densities[name]), metrics=shown)
        return plotting.feature_density(densities[name], metrics=shown,
                                        title=f"{name}: fraction of rows each latent fires on")

    return _panel(controls, draw)


def score_distributions(scores: Mapping[str, Mapping[str, np.ndarray]], *,
                        ranges: Mapping[str, tuple[float, float]] | None = None, score: str | None = None,
                        units: Sequence[str] | None = None) -> Panel:
    """Pick a score and unit sets: overlaid histograms of that score, one per set.

    ``scores``: unit set (e.g. 'neurons', 'SAE 1536', a null) -> score name -> one value per unit.
    ``ranges``: histogram range per score name (default (0, 1))."""
    import ipywidgets as w

    sets = list(scores)
    names = list(dict.fromkeys(name for per_set in scores.values() for name in per_set))
    controls = {"score": w.Dropdown(options=names, value=score or names[0], description="score"),
                "units": w.SelectMultiple(options=sets, value=tuple(sets if units is None else units),
                                          description="units", rows=min(8, len(sets)))}

    def draw(v, state):
        chosen = [s for s in v["units"] if v["score"] in scores[s]]
        if not chosen:
            return f"Select at least one unit set with a {v['score']!r} score."
        groups = {s: np.asarray(scores[s][v["score"]]) for s in chosen}
        state.update(score=v["score"], units=chosen, groups=groups)
        return plotting.distributions(groups, xlabel=v["score"], range_=(ranges or {}).get(v["score"], (0.0, 1.0)),
                                      title=f"{v['score']} of each unit, per unit set")

    return _panel(controls, draw)


def curve_picker(families: Mapping[str, Mapping[str, Mapping[float, float]]], *, xlabel: str, ylabel: str,
                 title: str = "", label: str = "metric", value: str | None = None, xscale: str = "linear") -> Panel:
    """A dropdown (named ``label``) over ``families``; each is a set of curves (series -> {x: y}), drawn together."""
    import ipywidgets as w

    keys = list(families)
    controls = {label: w.Dropdown(options=keys, value=value or keys[0], description=label)}

    def draw(v, state):
        key = v[label]
        state.update({label: key, "curves": families[key]})
        return plotting.curves(families[key], xlabel=xlabel, ylabel=ylabel, xscale=xscale,
                               title=f"{title}: {key}" if title else key)

    return _panel(controls, draw)


def feature_dashboard(views: Mapping[int, Sequence[Any]], *, feature: int | None = None, title: str = "") -> Panel:
    """A dropdown over features: the chosen feature's dashboard (``dashboards.feature_html``, the page
    ``mmfeatures inspect`` writes), from ``views`` (feature -> its ``FeatureView`` on each store)."""
    import ipywidgets as w
    from IPython.display import HTML

    from mmfeatures.dashboards import feature_html

    features = list(views)
    controls = {"feature": w.Dropdown(options=features, value=features[0] if feature is None else feature,
                                      description="feature")}

    def draw(v, state):
        shown = views[v["feature"]]
        state.update(feature=v["feature"], top=[s.id for s in shown[0].top])
        return HTML(feature_html(shown, title=title, index=None))

    return _panel(controls, draw)
