"""The fidelity step (``mmfeatures fidelity``): splice SAEs into the model and measure what survives, against
zero- and mean-ablating the site."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmfeatures.analysis.stats import check_count, check_n_perm, check_seed, check_share
from mmfeatures.pipeline.record import Record, opt, run_step, save_figure, table
from mmfeatures.pipeline.train import open_store


@dataclass(frozen=True)
class FidelityStep:
    """Replace a site's activations by each SAE's reconstruction and score the model's own embeddings:
    cosine to the clean run, concept retrieval and cross-lingual retrieval, as fractions recovered between
    zero-ablation (0) and the clean model (1)."""

    saes: tuple[str, ...] = opt((), "SAE folders (with decoders), all trained on one store", required=True,
                                artifact=True)
    store: str | None = opt(None, "a store of the SAEs' model and site, whose mean is the mean-ablation baseline "
                                  "(default: the store the SAEs were trained on)", artifact=True)
    names: tuple[str, ...] = opt((), "a label per SAE for tables and figures (default: the folder names)")
    languages: tuple[str, ...] = opt(("en", "es", "ja", "sw"), "languages of the built-in sentences scored")
    seeds: bool = opt(False, "the SAEs differ only in seed: add a row with each column's mean and 95% interval "
                             "over them, and the verdict's interval draws a seed per draw (otherwise the verdict is "
                             "the first SAE's)")
    n_sentences: int = opt(128, "sentences the verdict scores (drawn once from the languages' sentences): every "
                                "null draw is a forward pass over them")
    n_perm: int = opt(19, "SAEs with their decoder rows shuffled: the null (the smallest p is 1/(n_perm+1))")
    floor: float = opt(0.05, "the smallest gain in mean cosine over untrained SAEs of the same width and L0 that "
                             "counts, declared before the run")
    n_boot: int = opt(200, "bootstrap draws of the gain's interval (sentences and seeds)")
    seed: int = opt(0, "seed of the sentences drawn, the shuffles and the bootstrap")
    out: str | None = opt("runs/fidelity", "folder for result.json and the figure", volatile=True)

    def __post_init__(self):
        from mmfeatures.errors import InputError

        if not self.saes:
            raise InputError("no SAEs given; pass --saes with one or more SAE folders")
        if self.seeds and len(self.saes) < 2:
            raise InputError(f"seeds needs >= 2 SAEs that differ only in seed (got {len(self.saes)}); 3 or more "
                             "give a usable interval")
        if self.names and len(self.names) != len(self.saes):
            raise InputError(f"{len(self.names)} names for {len(self.saes)} SAEs; give one name per SAE or none")
        if len(set(self.saes)) != len(self.saes):
            raise InputError(f"saes repeat an SAE ({list(self.saes)}); give each once")
        check_count("n_sentences", self.n_sentences, 10, 128)
        check_count("n_boot", self.n_boot, 20, 1000)
        check_share("floor", self.floor, example=0.05)
        check_n_perm(self.n_perm)
        check_seed(self.seed)


def run_fidelity(step: FidelityStep) -> Record:
    return run_step("fidelity", step, lambda out: _fidelity(step, out))


def _fidelity(step: FidelityStep, out: Path | None) -> Record:
    from mmfeatures import plotting
    from mmfeatures.analysis.fidelity import fidelity
    from mmfeatures.datasets import ConceptDataset
    from mmfeatures.encoders import load_encoder
    from mmfeatures.errors import InputError
    from mmfeatures.sae import check_compatible, load_sae

    saes = [load_sae(p) for p in step.saes]
    for path, sae in zip(step.saes, saes, strict=True):
        if not hasattr(sae, "W_dec"):
            from mmfeatures.sae.pretrained import EncoderOnlyError

            raise EncoderOnlyError(f"{path} is an encoder-only SAE ({type(sae).__name__}): splicing needs a decoder to "
                                   "write the reconstruction back; give SAEs with W_dec (trained ones, SAELens folders)")
    stores = {sae.metadata.get("store") for sae in saes}
    if len(stores) != 1 or None in stores:
        raise InputError(f"the SAEs come from {len(stores)} stores ({sorted(map(str, stores))}); fidelity compares "
                         "SAEs of one model and site: pass SAEs trained on one store")
    store = open_store(step.store or stores.pop(), "store (the SAE records none)")
    for sae in saes:
        check_compatible(sae, store)
    names = list(step.names) or [Path(p).name for p in step.saes]
    encoder = load_encoder(store.config.model)
    data = ConceptDataset.builtin(["concepts"], languages=list(step.languages))
    mean = store.stats().mean_d
    rows = {name: fidelity(encoder, store.config.site, sae, data, mean=mean).row() for name, sae in zip(
        names, saes, strict=True)}
    metrics = ("cosine", "retrieval", "crosslingual")
    columns = ["sae", *metrics, *(f"recovered_{m}_vs_{b}" for b in ("zero", "mean") for m in metrics)]
    fig = plotting.grouped_bars({n: {m: rows[n][f"recovered_{m}_vs_zero"] for m in metrics} for n in names},
                                ylabel="fraction recovered vs zero-ablation",
                                title=f"Spliced SAEs at {store.config.site}: share of clean behaviour kept")
    figures = ({"file": "fidelity.png", "caption": "Fraction of the clean model's behaviour each spliced SAE "
                                                   "keeps, between zero-ablation (0) and clean (1)."},) \
        if save_figure(fig, out, "fidelity.png") else ()
    body = [[n, *(round(float(rows[n][c]), 4) for c in columns[1:])] for n in names]
    if step.seeds:
        from mmfeatures.analysis.stats import seed_interval

        spans = [seed_interval([rows[n][c] for n in names]) for c in columns[1:]]
        body.append([f"mean [95% interval] over {len(names)} seeds",
                     *(f"{m:.4f} [{lo:.4f}, {hi:.4f}]" for m, lo, hi in spans)])
    verdict, tests, extra = _verdict(step, encoder, store.config.site, saes, data, mean)
    return Record("fidelity", f"Splice fidelity of {len(saes)} SAE(s) on {store.config.model} {store.config.site}",
                  {}, claim=verdict.claim, verdict=verdict.text, supported=verdict.supported,
                  status=verdict.status.value, tests=tests, scores=tuple(t["score"] for t in extra[:1]),
                  figures=figures,
                  tables=(table(f"{len(data)} built-in sentences in {', '.join(step.languages)}; the SAE replaces "
                                "the site at content tokens only", columns, body), *extra[1:]))


def _verdict(step: FidelityStep, encoder, site: str, saes, data, mean):
    """The splice verdict (``analysis.evidence_splice``) on ``n_sentences`` of ``data``: (verdict, test rows, [score
    holder, tables])."""
    import numpy as np

    from mmfeatures.analysis.evidence import power_table
    from mmfeatures.analysis.evidence_splice import splice_test
    from mmfeatures.analysis.verdict import decide

    texts = [e.content for e in data]
    chosen = np.sort(np.random.default_rng(step.seed).choice(len(texts), min(step.n_sentences, len(texts)),
                                                              replace=False))
    used = saes if step.seeds else saes[:1]
    test, means = splice_test(encoder, site, used, [texts[i] for i in chosen], mean, n_perm=step.n_perm,
                              n_boot=step.n_boot, floor=step.floor, seed=step.seed)
    name = step.names[0] if step.names else Path(step.saes[0]).name
    claim = (f"Splicing {'the SAEs (seeds)' if step.seeds else name} into the model keeps its embeddings better "
             "than an SAE with nothing learnt")
    details = (f"On {len(chosen)} of the sentences, the spliced model's embeddings have mean cosine "
               f"{means['SAE']:.3f} to the clean ones; untrained SAEs of the same width and L0 "
               f"{means['random directions (baseline)']:.3f}; the site mean-ablated "
               f"{means['mean-ablated (reference)']:.3f}; the SAE with its decoder rows shuffled "
               f"{means['decoder shuffled (null, mean)']:.3f}.")
    verdict = decide(claim, (test,), details=details)
    return verdict, (test.row(),), [{"score": test.score.row()},
                                     table("Mean cosine to the clean embeddings", ["condition", "mean cosine"],
                                           [[k, round(v, 4)] for k, v in means.items()]),
                                     table(*power_table((test,)))]
