"""The inspect step (``mmfeatures inspect``): feature dashboards, one self-contained HTML page per chosen feature
and an index with search (``mmfeatures.dashboards``), optionally with each feature's best partners in another SAE
or model, and a Neuronpedia export of the same features (``mmfeatures.neuronpedia``).

Everything is checked before any work: the features against the SAE's width, every store against the SAE
(model, site, width: ``check_compatible``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmfeatures.pipeline.record import Artifact, Record, opt, run_step, table
from mmfeatures.pipeline.train import open_store


@dataclass(frozen=True)
class InspectStep:
    """Dashboards of chosen features of one SAE on one or more stores it reads."""

    sae: str | None = opt(None, "SAE folder or name", required=True, artifact=True)
    store: str | None = opt(None, "a store the SAE reads (per-token stores show every token's activation)",
                            required=True, artifact=True)
    features: tuple[int, ...] = opt((), "feature ids, e.g. 12,40", required=True)
    beside: tuple[str, ...] = opt((), "more stores the SAE reads, drawn beside the first (a two-tower model's "
                                      "other tower)", artifact=True)
    texts: str | None = opt(None, "data whose texts a pooled store shows (e.g. concepts); stores of tokens need none")
    partner_sae: str | None = opt(None, "another SAE: each feature's best-correlated latents in it", artifact=True)
    partner_store: str | None = opt(None, "the store partner_sae reads, over the same examples", artifact=True)
    top: int = opt(12, "top examples per feature")
    neuronpedia: bool = opt(False, "also write a Neuronpedia export of the features (text sites) into OUT/neuronpedia")
    title: str = opt("", "a title for the pages (default: the SAE and the store)")
    out: str | None = opt("runs/inspect", "folder for index.html, feature-N.html and result.json", volatile=True)

    def __post_init__(self):
        from mmfeatures.errors import InputError

        if (self.partner_sae is None) != (self.partner_store is None):
            raise InputError("give both --partner-sae and --partner-store (the partner SAE and the store it reads, "
                             "over the same examples), or neither")
        if self.top < 1:
            raise InputError(f"top = {self.top}; show at least 1 example per feature, e.g. --top 12")


def run_inspect(step: InspectStep) -> Record:
    return run_step("inspect", step, lambda out: _inspect(step, out))


def _texts(spec: str | None) -> dict[str, str] | None:
    if spec is None:
        return None
    from mmfeatures.pipeline.extract import load_data

    return {e.id: e.content for e in load_data(spec).examples if isinstance(e.content, str)}


def _inspect(step: InspectStep, out: Path | None) -> Record:
    from mmfeatures.analysis.dashboard import check_features, feature_views, with_partners
    from mmfeatures.dashboards import write_dashboards
    from mmfeatures.sae import check_compatible, encode_store, load_sae

    sae = load_sae(step.sae)
    features = check_features(step.features, sae.d_sae)
    stores = [open_store(p) for p in (step.store, *step.beside)]
    for store in stores:
        check_compatible(sae, store)
    partner = None
    if step.partner_sae is not None:
        partner = load_sae(step.partner_sae), open_store(step.partner_store, "partner store")
        check_compatible(*partner)
    texts = _texts(step.texts)
    per_store = []
    for i, store in enumerate(stores):
        latents = encode_store(store, sae, progress=None)
        views = feature_views(store, latents, features, texts=texts, n_top=step.top)
        if partner is not None and i == 0:
            views = with_partners(views, store, latents, partner[1], encode_store(partner[1], partner[0],
                                                                                  progress=None),
                                  name=Path(str(step.partner_sae)).name, texts=texts)
        per_store.append(views)
    by_feature = {f: [views[k] for views in per_store] for k, f in enumerate(features)}
    title = step.title or f"{Path(str(step.sae)).name} on {stores[0].config.model} {stores[0].config.site}"
    artifacts = ()
    if out is not None:
        index = write_dashboards(by_feature, out, title=title)
        artifacts = (Artifact("dashboards", str(index), "", stores[0].config.site),)
        if step.neuronpedia:
            from mmfeatures.neuronpedia import write_export

            folder = write_export(by_feature, out / "neuronpedia", sae=sae, store=stores[0])
            artifacts += (Artifact("neuronpedia", str(folder), "", stores[0].config.site),)
    rows = [[f, f"{v[0].frequency:.4%}", round(v[0].max_activation, 3), v[0].top_concept or "-",
             v[0].top_language or "-", ", ".join(f"{p.name}:{p.feature} r={p.r:.2f}" for p in v[0].partners) or "-"]
            for f, v in by_feature.items()]
    return Record("inspect", f"Dashboards of {len(features)} feature(s): {title}", {},
                  tables=(table(f"Features of {Path(str(step.sae)).name} on {stores[0].config.summary}"
                                + (" (pages: index.html)" if out is not None else ""),
                                ["feature", "fires on (rows)", "largest", "top concept", "top language",
                                 "best partners"], rows),),
                  artifacts=artifacts)
