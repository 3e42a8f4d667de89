"""``mmfeatures match``: match the units of two models (or two SAEs) on activation correlation, with nulls."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmfeatures.analysis.anchors import anchor
from mmfeatures.analysis.stats import check_n_perm, p_text
from mmfeatures.pipeline.record import Record, beats_null, fmt, opt, over_seeds, run_step, save_figure, table
from mmfeatures.pipeline.train import open_store, units_of


@dataclass(frozen=True)
class MatchStep:
    """Each unit of A against every unit of B over the same inputs (one row per example; token stores are
    max-pooled): the best-match correlations and linear CKA, each against a permuted-rows null."""

    store_a: str | None = opt(None, "store folder of model A", required=True, artifact=True)
    store_b: str | None = opt(None, "store folder of model B (the same inputs as A)", required=True, artifact=True)
    sae_a: str | None = opt(None, "SAE for A (default: A's own dimensions)", artifact=True)
    sae_b: str | None = opt(None, "SAE for B (default: B's own dimensions)", artifact=True)
    store_null: str | None = opt(None, "store of B's random-init copy (model name + '+random-init-<seed>') over the "
                                       "same inputs: A must match B better than it matches this", artifact=True)
    sae_null: str | None = opt(None, "SAE trained on store_null (default: its own dimensions)", artifact=True)
    seeds_a: tuple[str, ...] = opt((), "more SAEs of A that differ from sae_a only in seed, comma-separated: the "
                                       "effects (median best r beyond shuffled rows, and beyond the random-init copy) "
                                       "are recomputed with each and reported with a 95% interval over the seeds; the "
                                       "verdict then also needs the intervals above 0", artifact=True)
    n_perm: int = opt(19, "row permutations per null (the smallest p-value is 1/(n_perm+1))")
    threshold: float = opt(0.5, "a unit counts as matched when its best correlation is at least this")
    label: str = opt("", "what B is, added to the claim (e.g. 'positive control: the same weights')")
    seed: int = opt(0, "seed of the permutations")
    out: str | None = opt("runs/match", "folder for result.json and the figures (none: nothing written)",
                          volatile=True)

    def __post_init__(self):
        from mmfeatures.errors import InputError

        check_n_perm(self.n_perm)
        if self.seeds_a and not self.sae_a:
            raise InputError("seeds_a are further SAEs beside sae_a; give sae_a too (neurons have no seeds)")


def _null_cka(za: np.ndarray, zb: np.ndarray, n: int, seed: int):
    from mmfeatures.analysis.similarity import cka_null

    return cka_null(za, zb, n, seed)


def _best(za: np.ndarray, zb: np.ndarray, absolute: bool) -> tuple[np.ndarray, np.ndarray]:
    """(best r, index of the best B unit) for each A unit; ``absolute`` for neurons, whose sign is arbitrary."""
    from mmfeatures.analysis import best_partners

    p = best_partners(za, zb, 1, absolute=absolute)
    return p.values[:, 0], p.index[:, 0]


def _null_model(job: MatchStep, la) -> np.ndarray:
    """The live units of B's random-init copy over A's examples."""
    from mmfeatures.analysis import check_aligned
    from mmfeatures.sae import load_sae

    zn, ln = units_of(open_store(job.store_null, "store_null"), load_sae(job.sae_null) if job.sae_null else None)
    check_aligned(la.example_id, ln.example_id, "examples (store_a and store_null)")
    return zn[:, zn.std(0) > 0]


def _versus(job: MatchStep, best: np.ndarray, null_best: np.ndarray):
    """The median over A's units of (best r in B) - (best r in the null model), against random sign flips of those
    differences. A real match must beat it, and a same-architecture random model can win."""
    from mmfeatures.analysis import Score

    diff = best - null_best
    rng = np.random.default_rng(job.seed)
    flips = [float(np.median(diff * rng.choice([-1.0, 1.0], len(diff)))) for _ in range(job.n_perm)]
    return Score("median best-match r beyond B's random-init copy", float(np.median(diff)), np.array(flips))


SEED_EFFECTS = ("median best r beyond shuffled rows", "median best r beyond the random-init copy")


def _seed_effects(job: MatchStep, za: np.ndarray, zb: np.ndarray, zn: np.ndarray | None) -> list[float]:
    """One SAE seed's effects: its median best r minus the mean of 5 shuffled-row medians, and (with a null model)
    its median margin over B's random-init copy."""
    from mmfeatures.analysis import permuted_rows_null

    za = za[:, za.std(0) > 0]
    best = _best(za, zb, False)[0]
    shuffled = permuted_rows_null(za, zb, n_perm=5, seed=job.seed, statistic=lambda r: r, absolute=False)
    found = [float(np.median(best) - np.median(shuffled, axis=1).mean())]
    return found + ([float(np.median(best - _best(za, zn, False)[0]))] if zn is not None else [])


def run_match(step: MatchStep) -> Record:
    return run_step("match", step, lambda out: _match(step, out))


def _match(job: MatchStep, out) -> Record:
    from mmfeatures import plotting
    from mmfeatures.analysis import Score, check_aligned, permuted_rows_null
    from mmfeatures.sae import load_sae

    stores = [open_store(job.store_a, "store_a"), open_store(job.store_b, "store_b")]
    check_aligned([e["id"] for e in stores[0].examples], [e["id"] for e in stores[1].examples],
                  f"examples (store_a {job.store_a}, store_b {job.store_b})")
    (za, la), (zb, lb) = [units_of(s, load_sae(p) if p else None)
                          for s, p in zip(stores, (job.sae_a, job.sae_b), strict=True)]
    check_aligned(la.example_id, lb.example_id, "examples")
    alive_a, alive_b = np.flatnonzero(za.std(0) > 0), np.flatnonzero(zb.std(0) > 0)
    za, zb = za[:, alive_a], zb[:, alive_b]
    neurons = job.sae_a is None and job.sae_b is None        # a neuron and its sign flip are the same direction
    best, match = _best(za, zb, neurons)
    permuted = permuted_rows_null(za, zb, n_perm=job.n_perm, seed=job.seed, statistic=lambda r: r,
                                  absolute=neurons)
    null, null_best = np.median(permuted, axis=1), permuted[0]      # the figure shows one permutation
    median = Score("median best-match correlation", float(np.median(best)), null)
    cka = _null_cka(za, zb, job.n_perm, job.seed)
    matched = float((best >= job.threshold).mean())
    names = [f"{s.config.model} {s.config.site}" + (" SAE" if p else "") for s, p in
             zip(stores, (job.sae_a, job.sae_b), strict=True)]
    fig = plotting.distributions({"best match": best, "B's rows permuted (null)": null_best},
                                 xlabel="best correlation of an A unit with any B unit", range_=(0, 1),
                                 title=f"{names[0]} → {names[1]}")
    saved = save_figure(fig, out, "best_match.png")
    concepts, mean_by = np.unique(la.concept.astype(str), return_inverse=True)
    profile = np.stack([za[mean_by == i].mean(0) for i in range(len(concepts))])     # concepts x units
    rows = [[f"a{alive_a[i]}", f"b{alive_b[match[i]]}", round(float(best[i]), 3), str(concepts[profile[:, i].argmax()])]
            for i in np.argsort(-best)[:10]]
    zn = _null_model(job, la) if job.store_null else None
    if zn is not None:
        null_model_best = _best(za, zn, job.sae_a is None and job.sae_null is None)[0]
        versus = _versus(job, best, null_model_best)
    else:
        versus = null_model_best = None
    ok = beats_null(median.row()) and beats_null(cka.row()) and (versus is None or beats_null(versus.row()))
    verdict = (f"{'Supported' if ok else 'Not supported'}. Over {len(za)} inputs, each of A's {za.shape[1]} live units "
               f"finds a B unit with median correlation {fmt(median.value)}; with B's rows shuffled the median is "
               f"{fmt(median.null_mean)} ± {fmt(median.null_sd)} (K = {job.n_perm}, {p_text(median.p_value, job.n_perm)}). "
               f"{100 * matched:.1f}% of A's units have a match with r >= {job.threshold} (shuffled: "
               f"{100 * float((null_best >= job.threshold).mean()):.1f}%). Linear CKA is {fmt(cka.value)} against "
               f"{fmt(cka.null_mean)} shuffled ({p_text(cka.p_value, len(cka.null))}).")
    if versus is not None:
        verdict += (f" Against B's random-init copy (same architecture and tokenizer, no training), A's units find "
                    f"matches with median r {fmt(float(np.median(null_model_best)))}: A matches B better "
                    f"by a median {fmt(versus.value)} per unit (sign-flip null {fmt(versus.null_mean)} ± "
                    f"{fmt(versus.null_sd)}, {p_text(versus.p_value, len(versus.null))}).")
    tables = [table("The best-matched pairs (A unit, its best B unit, r, A's strongest concept)",
                    ["A unit", "B unit", "r", "concept"], rows)]
    if job.seeds_a:
        per_seed = [_seed_effects(job, z, zb, zn) for z in
                    [za, *(units_of(stores[0], load_sae(p))[0] for p in job.seeds_a)]]
        seeds, sentence, held = over_seeds([job.sae_a, *job.seeds_a], list(SEED_EFFECTS[:len(per_seed[0])]), per_seed)
        tables.append(seeds)
        verdict += f" {sentence} (B's SAE is the same for every seed.)"
        if ok and not held:
            ok, verdict = False, "Not supported" + verdict[len("Supported"):]
    verdict += " " + anchor("seed_shared")
    return Record(
        "match", f"Across models: {names[0]} against {names[1]}", {},
        claim=f"Units of {names[0]} have counterparts in {names[1]}" + (f" ({job.label})" if job.label else ""),
        verdict=verdict, supported=ok,
        scores=(median.row(), cka.row(), *((versus.row(),) if versus is not None else ())),
        tables=tuple(tables),
        figures=({"file": "best_match.png", "caption": "Each A unit's best correlation with any B unit, and the "
                                                       "same with B's rows shuffled (the null)."},) if saved else ())
