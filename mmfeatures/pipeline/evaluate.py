"""The eval step (``mmfeatures eval``): how good one SAE is on a store, beyond NMSE and L0.

- core, streamed over the store's rows: NMSE, explained variance, measured L0, dead and dense fractions, shrinkage
  (|reconstruction| / |x|), and the feature density histogram;
- k-sparse probing (k = 1, 2, 5, 10) of the store's concept and language labels from the SAE's latents, pooled
  per example, against the same probe on the model's neurons and a dense probe on every neuron;
- splice: the SAE's reconstruction replaces the site in the model on the built-in parallel sentences, scored by
  the model's own embeddings (cosine to clean, retrieval, translation retrieval) against zero- and mean-ablating
  the site, where the store's model can be loaded and its site is a text site.

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
    latents against neurons; splice fidelity against zero- and mean-ablation."""

    sae: str | None = opt(None, "SAE folder or name", required=True, artifact=True)
    store: str | None = opt(None, "a store of the SAE's model and site, ideally of rows it was not trained on",
                            required=True, artifact=True)
    ks: tuple[int, ...] = opt((1, 2, 5, 10), "k of the k-sparse probes")
    max_rows: int | None = opt(None, "rows scored for reconstruction (default: every row)")
    splice: bool = opt(True, "splice the SAE into the store's model on the built-in sentences")
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

    from mmfeatures.analysis import unit_activations
    from mmfeatures.analysis.probing import sparse_probe
    from mmfeatures.sae import check_compatible, load_sae
    from mmfeatures.sae.evaluate import evaluate_sae

    sae = load_sae(step.sae)
    store = open_store(step.store, "store")
    check_compatible(sae, store)
    own = getattr(sae, "inputs", {}).get("store") == store.key
    core = evaluate_sae(sae, store, max_rows=step.max_rows, rates=True)
    rate = np.asarray(core.pop("fire_rate"))
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
    z, labels = unit_activations(store, sae)
    x, _ = unit_activations(store)
    body = []
    for name in ("concept", "language"):
        values = [v or None for v in getattr(labels, name)]
        if sum(v is not None for v in values) < 20:
            continue
        latent, neuron = sparse_probe(z, values, step.ks), sparse_probe(x, values, step.ks, dense=True)
        body += [[name, "SAE latents", *(round(latent[k], 4) for k in step.ks), "", latent["classes"]],
                 [name, "neurons", *(round(neuron[k], 4) for k in step.ks), round(neuron["dense"], 4),
                  neuron["classes"]]]
    if body:
        tables.append(table("k-sparse probing: held-out balanced accuracy, one class against the rest (chance 0.5); "
                            "the neurons' probe is the baseline, the dense probe the ceiling",
                            ["label", "units", *(f"k={k}" for k in step.ks), "dense", "classes"], body))
    tables.append(_splice(step, sae, store))
    return Record("eval", f"SAE evaluation of {Path(str(step.sae)).name} on {store.config.summary}", {},
                  tables=tuple(tables), figures=tuple(figures))


def _splice(step: EvalStep, sae, store) -> dict:
    """The splice table, or a one-row table saying why it was not run."""
    from mmfeatures.analysis.fidelity import fidelity
    from mmfeatures.datasets import ConceptDataset
    from mmfeatures.encoders import load_encoder
    from mmfeatures.errors import MMFeaturesError

    title = "Splice on the built-in sentences: the SAE replaces the site at content tokens"
    if not step.splice:
        return table(title, ["note"], [["not run (--splice false)"]])
    if not store.config.site.startswith("text."):
        return table(title, ["note"], [[f"not run: {store.config.site} is not a text site"]])
    try:
        encoder = load_encoder(store.config.model)
    except (MMFeaturesError, OSError) as e:
        return table(title, ["note"], [[f"not run: {store.config.model} cannot be loaded here ({e})"]])
    data = ConceptDataset.builtin(["concepts"], languages=list(step.languages))
    f = fidelity(encoder, store.config.site, sae, data, mean=store.stats().mean_d)
    rows = [[cond, *(round(f.scores[cond][m], 4) for m in ("cosine", "retrieval", "crosslingual"))]
            for cond in ("clean", "sae", "zero", "mean") if cond in f.scores]
    rows += [[f"recovered vs {b}", *(round(f.recovered[b][m], 4) for m in ("cosine", "retrieval", "crosslingual"))]
             for b in f.recovered]
    return table(f"{title} ({len(data)} sentences in {', '.join(step.languages)})",
                 ["condition", "cosine", "retrieval", "crosslingual"], rows)
