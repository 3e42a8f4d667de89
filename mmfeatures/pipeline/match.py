"""``mmfeatures match``: match the units of two models (or two SAEs) on activation correlation, with nulls."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmfeatures.analysis.anchors import anchor
from mmfeatures.analysis.stats import check_count, check_n_perm, check_seed, check_share
from mmfeatures.pipeline.checks import check_distinct, check_random_copies
from mmfeatures.pipeline.record import Record, fmt, opt, run_step, save_figure, table
from mmfeatures.pipeline.train import open_store, units_of


@dataclass(frozen=True)
class MatchStep:
    """Each unit of A against every unit of B over the same inputs (one row per example; token stores are
    max-pooled): the median best-match correlation against B's rows shuffled (the null), beyond B's random-init
    copies (the baseline), with an interval over rows and both sides' SAE seeds; linear CKA is reported beside it."""

    store_a: str | None = opt(None, "store folder of model A", required=True, artifact=True)
    store_b: str | None = opt(None, "store folder of model B (the same inputs as A)", required=True, artifact=True)
    sae_a: str | None = opt(None, "SAE for A (default: A's own dimensions)", artifact=True)
    sae_b: str | None = opt(None, "SAE for B (default: B's own dimensions)", artifact=True)
    store_null: tuple[str, ...] = opt((), "stores of B's random-init copies (model name + '+random-init-<seed>'), "
                                          "comma-separated, over the same inputs: A must match B better than it "
                                          "matches these (the baseline)", artifact=True)
    sae_null: tuple[str, ...] = opt((), "one SAE per store_null, trained on it (default: their own dimensions)",
                                    artifact=True)
    seeds_a: tuple[str, ...] = opt((), "more SAEs of A that differ from sae_a only in seed, comma-separated: the "
                                       "interval draws a seed of A per bootstrap draw", artifact=True)
    seeds_b: tuple[str, ...] = opt((), "more SAEs of B that differ from sae_b only in seed (as seeds_a)",
                                   artifact=True)
    n_perm: int = opt(19, "row permutations per null (the smallest p-value is 1/(n_perm+1))")
    threshold: float = opt(0.5, "a unit counts as matched when its best correlation is at least this")
    floor: float = opt(0.02, "the smallest margin of median best-match r over the baseline that counts, declared "
                             "before the run")
    n_boot: int = opt(100, "bootstrap draws of the margin's interval (rows, seeds, random-init copies)")
    simulations: int = opt(10, "planted-effect simulations per size for the power")
    label: str = opt("", "what B is, added to the claim (e.g. 'positive control: the same weights')")
    seed: int = opt(0, "seed of the permutations")
    out: str | None = opt("runs/match", "folder for result.json and the figures (none: nothing written)",
                          volatile=True)

    def __post_init__(self):
        from mmfeatures.errors import InputError

        check_n_perm(self.n_perm)
        check_seed(self.seed)
        check_share("threshold", self.threshold, example=0.5)
        check_share("floor", self.floor, example=0.02)
        if self.seeds_a and not self.sae_a or self.seeds_b and not self.sae_b:
            raise InputError("seeds_a (seeds_b) are further SAEs beside sae_a (sae_b); give that SAE too "
                             "(neurons have no seeds)")
        if self.sae_null and len(self.sae_null) != len(self.store_null):
            raise InputError(f"{len(self.sae_null)} sae_null for {len(self.store_null)} store_null; give one SAE per "
                             "random-init store (each trained on it), or none to match their dimensions")
        for name, first, more in (("seeds_a", self.sae_a, self.seeds_a), ("seeds_b", self.sae_b, self.seeds_b),
                                  ("store_null", None, self.store_null)):
            listed = [first, *more] if first else list(more)
            if len(set(listed)) != len(listed):
                raise InputError(f"{name} repeats an SAE or store ({listed}); each must be a different one, or the "
                                 "interval counts one as several")
        check_count("n_boot", self.n_boot, 20, 1000)
        check_count("simulations", self.simulations, 1, 200)


def _null_stores(job: MatchStep, b) -> list:
    """B's random-init copies, each checked to be one (B's architecture, another store than B, B's site and pooling;
    a trained B beside a random-init B makes the swapped control)."""
    stores = [open_store(p, "store_null") for p in job.store_null]
    check_random_copies([(s, b) for s in stores], "store_null", "B")
    return stores


def run_match(step: MatchStep) -> Record:
    return run_step("match", step, lambda out: _match(step, out))


def _match(job: MatchStep, out) -> Record:
    from mmfeatures import plotting
    from mmfeatures.analysis import check_aligned, permuted_rows_null
    from mmfeatures.analysis.evidence_models import best_r, live, match_test
    from mmfeatures.analysis.similarity import cka_null
    from mmfeatures.analysis.verdict import decide
    from mmfeatures.sae import load_sae

    stores = [open_store(job.store_a, "store_a"), open_store(job.store_b, "store_b")]
    check_aligned([e["id"] for e in stores[0].examples], [e["id"] for e in stores[1].examples],
                  f"examples (store_a {job.store_a}, store_b {job.store_b})")
    nulls = _null_stores(job, stores[1])
    side = {"a": [job.sae_a, *job.seeds_a] if job.sae_a else [None], "b": [job.sae_b, *job.seeds_b] if job.sae_b
            else [None]}
    units = {}
    for key, store in zip("ab", stores, strict=True):
        saes = [load_sae(p) if p else None for p in side[key]]
        if saes[0] is not None:
            check_distinct(f"sae_{key} and seeds_{key}", list(zip(side[key], saes, strict=True)))
        units[key] = [units_of(store, sae) for sae in saes]
    (za, la), (zb, lb) = units["a"][0], units["b"][0]
    check_aligned(la.example_id, lb.example_id, "examples")
    zn = []
    for i, s in enumerate(nulls):
        z, ln = units_of(s, load_sae(job.sae_null[i]) if job.sae_null else None)
        check_aligned(la.example_id, ln.example_id, f"examples (store_a and store_null {s.path})")
        zn.append(z)
    neurons = job.sae_a is None and job.sae_b is None        # a neuron and its sign flip are the same direction
    baseline_name = (f"B's random-init cop{'y' if len(zn) == 1 else 'ies'}" if zn else "B's rows shuffled")
    test = match_test([z for z, _ in units["a"]], [z for z, _ in units["b"]], zn, absolute=neurons,
                      n_perm=job.n_perm, n_boot=job.n_boot, simulations=job.simulations, floor=job.floor,
                      seed=job.seed, baseline_name=baseline_name)
    alive_a, alive_b = np.flatnonzero(za.std(0) > 0), np.flatnonzero(zb.std(0) > 0)
    za, zb = za[:, alive_a], zb[:, alive_b]
    from mmfeatures.analysis import best_partners

    partners = best_partners(za, zb, 1, absolute=neurons)
    best, match = partners.values[:, 0], partners.index[:, 0]
    null_best = permuted_rows_null(za, zb, n_perm=1, seed=job.seed, statistic=lambda r: r, absolute=neurons)[0]
    cka = cka_null(za, zb, job.n_perm, job.seed)
    matched = float((best >= job.threshold).mean())
    names = [f"{s.config.model} {s.config.site}" + (" SAE" if p else "") for s, p in
             zip(stores, (job.sae_a, job.sae_b), strict=True)]
    curves = {"best match": best, "B's rows permuted (null)": null_best}
    if zn:
        curves["B's random-init copy (baseline)"] = best_r(za, live(zn[0]), neurons)
    fig = plotting.distributions(curves, xlabel="best correlation of an A unit with any B unit", range_=(0, 1),
                                 title=f"{names[0]} → {names[1]}")
    saved = save_figure(fig, out, "best_match.png")
    concepts, mean_by = np.unique(la.concept.astype(str), return_inverse=True)
    profile = np.stack([za[mean_by == i].mean(0) for i in range(len(concepts))])     # concepts x units
    rows = [[f"a{alive_a[i]}", f"b{alive_b[match[i]]}", round(float(best[i]), 3), str(concepts[profile[:, i].argmax()])]
            for i in np.argsort(-best)[:10]]
    claim = f"Units of {names[0]} have counterparts in {names[1]}" + (f" ({job.label})" if job.label else "")
    details = (f"Over {len(za)} inputs, each of A's {za.shape[1]} live units finds a B unit with median correlation "
               f"{fmt(test.score.value)}; {100 * matched:.1f}% have a match with r >= {job.threshold} (B's rows "
               f"shuffled: {100 * float((null_best >= job.threshold).mean()):.1f}%). Linear CKA is {fmt(cka.value)} "
               f"against {fmt(cka.null_mean)} with B's rows shuffled (reported, not part of the rule).")
    verdict = decide(claim, (test,), details=details, notes=(anchor("seed_shared"),))
    per_seed = [[str(p or "neurons"), str(q or "neurons"), round(float(np.median(best_r(x, y, neurons))), 4)]
                for (p, (x, _)) in zip(side["a"], units["a"], strict=True)
                for (q, (y, _)) in zip(side["b"], units["b"], strict=True)]
    from mmfeatures.analysis.evidence import power_table

    return Record(
        "match", f"Across models: {names[0]} against {names[1]}", {}, claim=claim, verdict=verdict.text,
        supported=verdict.supported, status=verdict.status.value, tests=(test.row(),),
        scores=(test.score.row(), cka.row()),
        tables=(table("The best-matched pairs (A unit, its best B unit, r, A's strongest concept)",
                      ["A unit", "B unit", "r", "concept"], rows),
                table("Median best-match r for each pair of SAE seeds", ["A", "B", "median best r"], per_seed),
                table(*power_table((test,)))),
        figures=({"file": "best_match.png", "caption": "Each A unit's best correlation with any B unit, with B's rows "
                                                       "shuffled (the null) and against B's random-init copy (the "
                                                       "baseline)."},) if saved else ())
