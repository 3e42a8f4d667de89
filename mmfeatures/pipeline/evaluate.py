"""The eval step (``mmfeatures eval``): how good one SAE is on a store, beyond NMSE and L0.

- core, streamed over the store's rows: NMSE, explained variance, measured L0, dead and dense fractions, shrinkage
  (|reconstruction| / |x|), and the feature density histogram;
- k-sparse probing (k = 1, 2, 5, 10) of the store's concept and language labels from the SAE's latents, pooled
  per example, against the same probe on the model's neurons and a dense probe on every neuron;
- splice, per language and per modality: the SAE's reconstruction replaces the site in the model, scored by the
  model's own embeddings against zero- and mean-ablating the site, with 95% bootstrap intervals: on the built-in
  parallel sentences (cosine to clean, retrieval, translation retrieval to English) for a text site, and for a
  two-tower model on the emoji pictures and their English names (image -> caption retrieval, the spliced tower's
  cosine), where the store's model can be loaded;
- on a synthetic store (``mmfeatures.sae.synthetic.synthetic_store``): the planted dictionary's recovery (MCC,
  precision, recall, absorption) against an untrained SAE of the same shape.

``Record.metrics`` holds the headline numbers by name for scripts (``scripts/sae_results.py``).

Score it on rows the SAE was not trained on: the step says when the store is the SAE's own training store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmfeatures.pipeline.record import Record, opt, run_step, save_figure, table
from mmfeatures.pipeline.train import open_store


@dataclass(frozen=True)
class EvalStep:
    """Evaluate one SAE on one store: reconstruction, sparsity and shrinkage; k-sparse probes of the labels from
    latents against neurons; splice fidelity per language (and image -> caption for a two-tower model) against
    zero- and mean-ablation; on a synthetic store, recovery of the planted dictionary."""

    sae: str | None = opt(None, "SAE folder or name", required=True, artifact=True)
    store: str | None = opt(None, "a store of the SAE's model and site, ideally of rows it was not trained on",
                            required=True, artifact=True)
    ks: tuple[int, ...] = opt((1, 2, 5, 10), "k of the k-sparse probes")
    max_rows: int | None = opt(None, "rows scored for reconstruction (default: every row)")
    splice: bool = opt(True, "splice the SAE into the store's model on the built-in sentences (and, for a two-tower "
                             "model, on the emoji pictures)")
    languages: tuple[str, ...] = opt(("en", "es", "ja", "sw"), "languages of the built-in sentences spliced")
    out: str | None = opt("runs/eval", "folder for result.json and the figures", volatile=True)

    def __post_init__(self):
        from mmfeatures.errors import InputError

        if not self.ks or any(not isinstance(k, int) or k < 1 for k in self.ks):
            raise InputError(f"ks = {self.ks!r}; give probe sizes >= 1, e.g. --ks 1,2,5,10")
        if self.max_rows is not None and self.max_rows < 1:
            raise InputError(f"max_rows = {self.max_rows}; give a positive number of rows, or none for all")


def run_eval(step: EvalStep) -> Record:
    return run_step("eval", step, lambda out: _eval(step, out))


def _eval(step: EvalStep, out: Path | None) -> Record:
    import matplotlib.pyplot as plt

    from mmfeatures.sae import check_compatible, load_sae
    from mmfeatures.sae.evaluate import evaluate_sae

    sae = load_sae(step.sae)
    store = open_store(step.store, "store")
    check_compatible(sae, store)
    own = getattr(sae, "inputs", {}).get("store") == store.key
    core = evaluate_sae(sae, store, max_rows=step.max_rows, rates=True)
    rate = np.asarray(core.pop("fire_rate"))
    metrics = {k: float(v) for k, v in core.items()}
    tables = [table(f"Reconstruction and sparsity on {core['rows']:,} rows of {store.config.summary}"
                    + (" (the SAE's own training store: these rows are not held out)" if own else ""),
                    ["metric", "value"], [[k, round(float(v), 4)] for k, v in core.items() if k != "rows"])]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(np.log10(rate[rate > 0]), bins=40, color="#4477aa")
    ax.set(xlabel="log10 firing rate (latents that fire)", ylabel="latents",
           title=f"Feature density ({int((rate == 0).sum())} of {len(rate)} never fire)")
    figures = [{"file": "density.png", "caption": "Each latent's firing rate on the store's rows (log scale); "
                                                  "dead latents are left out and counted in the title."}] \
        if save_figure(fig, out, "density.png") else []
    tables += _probes(step, sae, store, metrics)
    tables += _truth(sae, store, metrics)
    tables += _splice(step, sae, store, metrics)
    return Record("eval", f"SAE evaluation of {Path(str(step.sae)).name} on {store.config.summary}", {},
                  tables=tuple(tables), metrics=metrics, figures=tuple(figures))


def _probes(step: EvalStep, sae, store, metrics: dict) -> list[dict]:
    """k-sparse probes of the concept and language labels (those with >= 20 labelled examples)."""
    from mmfeatures.analysis import unit_activations
    from mmfeatures.analysis.probing import sparse_probe

    z, labels = unit_activations(store, sae)
    x, _ = unit_activations(store)
    body = []
    for name in ("concept", "language"):
        values = [v or None for v in getattr(labels, name)]
        if sum(v is not None for v in values) < 20:
            continue
        latent, neuron = sparse_probe(z, values, step.ks), sparse_probe(x, values, step.ks, dense=True)
        metrics.update({f"probe_{name}_k{k}_{units}": float(r[k]) for k in step.ks
                        for units, r in (("latents", latent), ("neurons", neuron))})
        metrics[f"probe_{name}_dense"] = float(neuron["dense"])
        body += [[name, "SAE latents", *(round(latent[k], 4) for k in step.ks), "", latent["classes"]],
                 [name, "neurons", *(round(neuron[k], 4) for k in step.ks), round(neuron["dense"], 4),
                  neuron["classes"]]]
    if not body:
        return []
    return [table("k-sparse probing: held-out balanced accuracy, one class against the rest (chance 0.5); "
                  "the neurons' probe is the baseline, the dense probe the ceiling",
                  ["label", "units", *(f"k={k}" for k in step.ks), "dense", "classes"], body)]


def _truth(sae, store, metrics: dict) -> list[dict]:
    """On a synthetic store: the planted dictionary's recovery, against an untrained SAE of the same shape."""
    from mmfeatures.sae import SAE
    from mmfeatures.sae.synthetic import SyntheticConfig, SyntheticFeatures, score

    config = SyntheticConfig.from_spec(store.config.model)
    if config is None:
        return []
    data = SyntheticFeatures(config)
    trained, floor = score(sae, data), score(SAE(sae.d_in, sae.d_sae, sae.arch, seed=0), data)
    metrics.update({f"truth_{k}": float(v) for k, v in trained.items()})
    metrics.update({f"truth_floor_{k}": float(v) for k, v in floor.items()})
    return [table(f"Ground truth: the planted dictionary of {config.spec} (fresh rows); an untrained SAE of the same "
                  "shape is the floor", ["metric", "SAE", "untrained"],
                  [[k, round(trained[k], 4), round(floor[k], 4)] for k in trained])]


def _splice(step: EvalStep, sae, store, metrics: dict) -> list[dict]:
    """The splice tables (per language; per modality for a two-tower model), or one row saying why not run."""
    from mmfeatures.encoders import load_encoder
    from mmfeatures.errors import MMFeaturesError

    title = "Splice: the SAE replaces the site at content tokens"
    if not step.splice:
        return [table(title, ["note"], [["not run (--splice false)"]])]
    if store.config.model.startswith("synthetic:"):
        return [table(title, ["note"], [["not run: a synthetic store has no model"]])]
    try:
        encoder = load_encoder(store.config.model)
    except (MMFeaturesError, OSError) as e:
        return [table(title, ["note"], [[f"not run: {store.config.model} cannot be loaded here ({e})"]])]
    mean = store.stats().mean_d
    tables = []
    if store.config.site.startswith("text."):
        tables.append(_splice_text(step, encoder, sae, store.config.site, mean, metrics))
    if {m.value for m in encoder.modalities} == {"text", "image"}:
        tables.append(_splice_images(encoder, sae, store.config.site, mean, metrics))
    return tables or [table(title, ["note"], [[f"not run: {store.config.site} is an image site of a one-tower "
                                               "model (nothing to retrieve)"]])]


def _cell(v: tuple[float, float, float]) -> str:
    return "" if not np.isfinite(v[0]) else f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"


def _splice_text(step: EvalStep, encoder, sae, site: str, mean, metrics: dict) -> dict:
    from mmfeatures.analysis.fidelity import fidelity
    from mmfeatures.datasets import ConceptDataset

    data = ConceptDataset.builtin(["concepts"], languages=list(step.languages))
    f = fidelity(encoder, site, sae, data, mean=mean)
    names = ("cosine", "retrieval", "crosslingual")
    metrics.update({f"splice_{m}_{cond}": float(f.scores[cond][m]) for cond in f.scores for m in names})
    metrics.update({f"recovered_{m}_vs_{b}": float(f.recovered[b][m]) for b in f.recovered for m in names})
    rows = [[lang, cond, *(_cell(per.get(m, (np.nan,) * 3)) for m in names)]
            for lang in step.languages for cond in ("clean", "sae", "zero", "mean")
            if cond in f.by_language and (per := f.by_language[cond].get(lang)) is not None]
    rows += [["all", cond, *(f"{f.scores[cond][m]:.3f}" for m in names)] for cond in f.scores]
    rows += [["all", f"recovered vs {b}", *(f"{f.recovered[b][m]:.3f}" for m in names)] for b in f.recovered]
    return table(f"Splice on the built-in sentences ({len(data)} in {', '.join(step.languages)}): the SAE replaces "
                 "the site at content tokens, against zero- and mean-ablation; mean [95% bootstrap interval over "
                 "sentences]; crosslingual = retrieval of the English translation", ["language", "condition",
                                                                                      *names], rows)


def _splice_images(encoder, sae, site: str, mean, metrics: dict) -> dict:
    from mmfeatures.analysis.fidelity import crossmodal_fidelity
    from mmfeatures.datasets.builtin import load_emoji

    examples = {e.id: e for e in load_emoji(linked_only=True).examples}
    keys = sorted({i.rsplit("/", 1)[0] for i in examples}, key=lambda k: int(k.split("/")[1]))
    images = [examples[f"{k}/image"].content for k in keys]
    captions = [examples[f"{k}/en"].content for k in keys]
    f = crossmodal_fidelity(encoder, site, sae, images, captions, mean=mean)
    names = sorted({m for per in f.values() for m in per})
    metrics.update({f"splice_{m}_{cond}": v[0] for cond, per in f.items() for m, v in per.items()})
    return table(f"Splice across modalities: {len(images)} emoji pictures retrieve their English names "
                 f"(top-1 among all {len(images)}) with the SAE in the {site.split('.')[0]} tower, against zero- "
                 "and mean-ablation; mean [95% bootstrap interval over pictures]",
                 ["condition", *names], [[cond, *(_cell(per[m]) for m in names)] for cond, per in f.items()])
