"""``mmfeatures steer``: clamp a concept's SAE feature and measure how far it drags retrieval toward the
concept (see ``verdict`` for the rule):

- statistic: the median over query sentences (other concepts) of the rank of the best target sentence (1 = top)
  among the pool, with the feature clamped at the strongest multiple of its largest activation;
- null: other concepts' most selective features clamped to the same multiple of their own largest activation;
- baseline: random directions written at the norm the clamp writes (their mean per query);
- reference (not in the rule): the concept's mean-difference vector at that norm (a Golden-Gate analog);
- estimate and interval: the gain in median rank over the baseline, a bootstrap over queries with an SAE seed drawn
  per draw (seeds whose SAE has no confirmed feature are left out and named);
- power: ``verdict.shift_power`` (every simulated draw would be a forward pass of the model per condition).

The feature is checked before it is used: picked on each concept's first sentences (every language), confirmed on
the second ones (precision and recall where it fires). The first SAE (``sae``, then ``seeds`` in order) with a
confirmed feature leads; when none has one, the claim cannot be tested, and the verdict says so instead of steering
with another feature."""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, replace

import numpy as np
import torch

from mmfeatures.analysis.stats import Score, check_count, check_n_perm, check_seed, check_share
from mmfeatures.analysis.verdict import Test, cluster_bootstrap, decide, shift_power
from mmfeatures.errors import InputError
from mmfeatures.pipeline.record import Record, fmt, opt, run_step, save_figure, table
from mmfeatures.pipeline.train import open_store, units_of

QUERY_CONCEPTS = ("bread", "chair", "river", "school", "red", "five", "freedom", "run", "happiness", "village")
CONTROLS = ("none", "random-direction")
PICK, EVAL = "1", "2"
"""Sentence groups of the built-in concepts: the feature is picked on the first and confirmed on the second;
steering is scored on the second."""


@dataclass(frozen=True)
class SteerStep:
    """Clamp the confirmed feature for ``concept`` while embedding sentences about other concepts, and rank held-out
    sentences by cosine: where does the concept land? Null: the most selective features of other concepts, clamped
    to the same multiple of their own largest activation. Baseline: random directions written at the norm the clamp
    writes. Reference: the concept's mean-difference vector at that norm."""

    sae: str | None = opt(None, "SAE folder (with a decoder) trained on a layer site", required=True, artifact=True)
    store: str | None = opt(None, "labelled store of the built-in concept sentences, to pick the feature from "
                                  "(default: the SAE's training store)", artifact=True)
    seeds: tuple[str, ...] = opt((), "more SAEs that differ from sae only in seed, comma-separated: each picks and "
                                     "confirms its own feature (the first with one leads when sae has none); the "
                                     "interval draws a seed per bootstrap draw",
                                 artifact=True)
    concept: str = opt("dog", "the built-in concept to steer toward")
    strengths: tuple[float, ...] = opt((0.0, 0.25, 0.5, 1.0), "clamp values, as multiples of the feature's largest "
                                                               "activation on the store (<= 1 stays in its range)")
    queries: tuple[str, ...] = opt(QUERY_CONCEPTS, "concepts whose sentences are embedded while steering")
    language: str = opt("en", "language of the queries and of the ranked pool")
    where: str = opt("content", "positions the clamp writes: content (tokens the SAE reads; special tokens keep "
                                "theirs) or every; the other is reported beside it")
    n_perm: int = opt(19, "features of other concepts clamped just as hard (the null; the smallest p is "
                          "1/(n_perm+1))")
    n_random: int = opt(5, "random directions written at the clamp's norm: the baseline")
    candidates: int = opt(5, "the most selective features (on the first sentences) tried in turn for confirmation")
    min_precision: float = opt(0.5, "a feature is confirmed when, on the second sentences, at least this share of "
                                    "those it fires on are the concept's ...")
    min_recall: float = opt(0.5, "... and it fires on at least this share of the concept's")
    floor: float = opt(5.0, "the smallest gain in median rank over the random directions that counts, declared "
                            "before the run")
    n_boot: int = opt(200, "bootstrap draws of the gain's interval (queries and seeds)")
    control: str = opt("none", "none, or random-direction: a random direction of the clamp's norm replaces the "
                               "feature, where the verdict must come out 'not supported' (a falsification check)")
    seed: int = opt(0, "seed of the null's concepts and of the random directions")
    out: str | None = opt("runs/steer", "folder for result.json and the figure (none: nothing written)",
                          volatile=True)

    def __post_init__(self):
        from mmfeatures.analysis.steering import WHERE
        from mmfeatures.errors import InputError

        if not self.strengths or not all(math.isfinite(s) and s >= 0 for s in self.strengths):
            raise InputError(f"strengths {self.strengths!r}; give finite non-negative multiples, e.g. 0,0.5,1")
        if self.control not in CONTROLS:
            raise InputError(f"control {self.control!r}; use one of {', '.join(CONTROLS)}")
        if self.where not in WHERE:
            raise InputError(f"where {self.where!r}; use one of {', '.join(WHERE)}")
        if not 0 <= self.min_precision <= 1 or not 0 <= self.min_recall <= 1:
            raise InputError(f"min_precision {self.min_precision}, min_recall {self.min_recall}; give shares in [0, 1]")
        check_count("n_random", self.n_random, 2, 20)
        check_count("candidates", self.candidates, 1, 5)
        check_count("n_boot", self.n_boot, 20, 1000)
        check_share("floor", self.floor, high=sys.float_info.max, example=5)       # ranks: finite, >= 0
        if len(set((self.sae, *self.seeds))) != 1 + len(self.seeds):
            raise InputError(f"seeds repeat an SAE ({[self.sae, *self.seeds]}); each must be a different SAE")
        check_n_perm(self.n_perm)
        check_seed(self.seed)


def run_steer(step: SteerStep) -> Record:
    return run_step("steer", step, lambda out: _steer(step, out))


def _pick_auroc(z: np.ndarray, labels, concept: str) -> np.ndarray:
    """Each unit's AUROC for ``concept`` against the rest on the first sentences."""
    from mmfeatures.analysis.stats import auroc_by_class, ranks

    pick = np.flatnonzero(labels.group == PICK)
    onehot, concepts = labels.take(pick).onehot("concept")
    return auroc_by_class(ranks(z[pick]), onehot)[:, concepts.index(concept)]


def most_selective(z: np.ndarray, labels, concept: str) -> int:
    """The unit with the highest AUROC for ``concept`` on the first sentences (the null's features)."""
    return int(np.nanargmax(_pick_auroc(z, labels, concept)))


def confirmed(z: np.ndarray, labels, concept: str, job: SteerStep) -> tuple[int | None, list[list]]:
    """(the first of the ``candidates`` features most selective for ``concept`` on the first sentences that is
    confirmed on the second, or None; a table row per candidate tried)."""
    auc = _pick_auroc(z, labels, concept)
    held = np.flatnonzero(labels.group == EVAL)
    mine = labels.concept[held] == concept
    rows = []
    for f in np.argsort(-auc)[:job.candidates]:
        fires = z[held, f] > 0
        precision = float(mine[fires].mean()) if fires.any() else 0.0
        recall = float(fires[mine].mean())
        ok = precision >= job.min_precision and recall >= job.min_recall
        rows.append([f"f{f}", round(float(auc[f]), 3), round(precision, 3), round(recall, 3), "yes" if ok else "no"])
        if ok:
            return int(f), rows
    return None, rows


def _token_stats(store, concept: str):
    """(median row norm, mean of the concept's picking rows minus the mean of all picking rows), streamed shard
    by shard: memory holds one shard and a norm per row."""
    import torch

    from mmfeatures.analysis import Labels

    examples = Labels.from_records(store.examples)
    first, mine = examples.group == PICK, (examples.group == PICK) & (examples.concept == concept)
    norms, sums, counts = [], torch.zeros(2, store.d, dtype=torch.float64), np.zeros(2)
    for _, shard in store.iter_shards():
        x, example = shard["acts"].float(), shard["example"].numpy()
        norms.append(x.norm(dim=1))
        for i, keep in enumerate((first[example], mine[example])):
            sums[i] += x[torch.from_numpy(keep)].sum(0, dtype=torch.float64)
            counts[i] += keep.sum()
    mean_diff = (sums[1] / counts[1] - sums[0] / counts[0]).float()
    return float(torch.cat(norms).median()), mean_diff


def _steer(job: SteerStep, out) -> Record:
    return Steering(job).record(out)


class Steering:
    """One steer step's measurements, made once (``record`` writes them up)."""

    def __init__(self, job):
        from mmfeatures.analysis.steering import best_target_rank, embed_normalized
        from mmfeatures.datasets import ConceptDataset
        from mmfeatures.encoders import load_encoder
        from mmfeatures.sae import check_compatible, load_sae

        self.job = job
        self.sae = load_sae(job.sae)
        self.store = open_store(job.store or getattr(self.sae, "metadata", {}).get("store"),
                                "store (the SAE records none)")
        check_compatible(self.sae, self.store)
        self.model, self.site = self.store.config.model, self.store.config.site
        self.z, self.labels = units_of(self.store, self.sae)
        labels = self.labels
        if job.concept not in set(labels.concept):
            raise InputError(f"concept {job.concept!r} is not in {self.store.path}; e.g. "
                             f"{sorted(set(labels.concept))[:8]}")
        if not (labels.group == PICK).any() or not (labels.group == EVAL).any():
            raise InputError(f"{self.store.path} lacks the built-in concept sentences' two groups; extract --data "
                             "concepts")
        self.encoded = {job.sae: (self.sae, self.z)}     # SAE path -> (SAE, its units), each encoded once
        self.main, self.others = job.sae, list(job.seeds)
        if confirmed(self.z, labels, job.concept, job)[0] is None:
            for path in job.seeds:           # the first seed whose SAE has the feature leads; the others give the interval
                sae, z = self.units(path)
                if confirmed(z, labels, job.concept, job)[0] is not None:
                    self.sae, self.z, self.main = sae, z, path
                    self.others = [p for p in (job.sae, *job.seeds) if p != path]
                    break
        rng = np.random.default_rng(job.seed)
        others = sorted(set(labels.concept) - {job.concept} - set(job.queries))
        self.drawn = list(rng.choice(others, min(job.n_perm, len(others)), replace=False))
        sentences = [e for e in ConceptDataset.builtin(["concepts"], languages=[job.language]) if e.group == EVAL]
        self.pool = [e.content for e in sentences]
        self.target = np.array([e.concept == job.concept for e in sentences])
        self.queries = [e.content for e in sentences if e.concept in job.queries]
        if not self.queries or not self.target.any():
            raise InputError(f"no {job.language!r} sentences for the queries or for {job.concept!r}")
        self.encoder = load_encoder(self.model)
        self.pool_emb = embed_normalized(self.encoder, self.pool)
        self.token_norm, self.mean_diff = _token_stats(self.store, job.concept)
        self._ranks = best_target_rank
        self.directions = torch.randn(job.n_random, self.sae.d_in,
                                      generator=torch.Generator().manual_seed(job.seed))

    def units(self, path: str):
        """(the SAE at ``path``, its units on the store), encoded once."""
        from mmfeatures.sae import check_compatible, load_sae

        if path not in self.encoded:
            sae = load_sae(path)
            check_compatible(sae, self.store)
            self.encoded[path] = (sae, units_of(self.store, sae)[0])
        return self.encoded[path]

    def ranks(self, edit, where: str | None = None) -> np.ndarray:
        """Per query: the rank (1 = top) of the best target sentence with ``edit(positions)`` active."""
        from mmfeatures.analysis.steering import embed_with

        q = embed_with(self.encoder, self.site, edit, self.queries, where=where or self.job.where)
        return self._ranks(q, self.pool_emb, self.target).astype(float) + 1

    def clamp(self, sae, z, feature: int, multiple: float, where: str | None = None) -> np.ndarray:
        from mmfeatures.analysis.steering import steer

        value = multiple * max(0.0, float(z[:, feature].max()))
        return self.ranks(lambda pos: steer(self.encoder, self.site, sae, feature, value=value, positions_bt=pos),
                          where)

    def shifted(self, vector: torch.Tensor, where: str | None = None) -> np.ndarray:
        from mmfeatures.analysis.steering import shift

        return self.ranks(lambda pos: shift(self.encoder, self.site, vector, pos), where)

    def norm(self, sae, z, feature: int) -> float:
        """The largest norm the strongest clamp writes: multiple x largest activation x decoder row norm."""
        return max(self.job.strengths) * max(0.0, float(z[:, feature].max())) * float(sae.W_dec[feature].norm())

    def random(self, norm: float) -> np.ndarray:
        """(n_random, queries) ranks with random unit directions written at ``norm``."""
        return np.stack([self.shifted(d / d.norm() * norm) for d in self.directions])

    def one_sae(self, sae, z) -> dict | None:
        """The confirmed feature's ranks and its baseline's, or None when the SAE has no confirmed feature."""
        feature, _ = confirmed(z, self.labels, self.job.concept, self.job)
        if feature is None:
            return None
        norm = self.norm(sae, z, feature)
        if self.job.control == "random-direction":
            ranks = self.shifted(self.directions[0] / self.directions[0].norm() * norm * 1.0)
            base = self.random(norm)[1:]
        else:
            ranks, base = self.clamp(sae, z, feature, max(self.job.strengths)), self.random(norm)
        return {"feature": feature, "norm": norm, "ranks": ranks, "baseline": base.mean(0)}

    def record(self, out):
        from mmfeatures import plotting
        from mmfeatures.analysis.evidence import power_table

        job = self.job
        feature, candidates = confirmed(self.z, self.labels, job.concept, job)
        claim = f"Clamping one feature steers the model toward '{job.concept}'" + (
            f" (control: {job.control}; must not be supported)" if job.control != "none" else "")
        title = f"Steering: clamping the '{job.concept}' feature of {self.model}" + (
            f", control: {job.control}" if job.control != "none" else "")
        tables = [table(f"Candidate features for '{job.concept}' of {self.main}: AUROC on the first sentences, "
                        "precision and recall where each fires on the second",
                        ["feature", "AUROC (first)", "precision (second)", "recall (second)", "confirmed"], candidates)]
        name = f"median rank of the best '{job.concept}' sentence, beyond random directions at the clamp's norm"
        if feature is None:
            which = "this SAE" if not job.seeds else f"each of the {1 + len(job.seeds)} SAE seeds"
            test = Test(name, None, reason=f"{which} has no feature for '{job.concept}': none of the {job.candidates} "
                                           "most selective features on the first sentences is confirmed on the second "
                                           f"(precision >= {job.min_precision} and recall >= {job.min_recall} where it "
                                           "fires)")
            verdict = decide(claim, (test,))
            return Record("steer", title, {}, claim=claim, verdict=verdict.text, supported=verdict.supported,
                          status=verdict.status.value, tests=(test.row(),), tables=tuple(tables))
        main = self.one_sae(self.sae, self.z)
        unsteered = float(np.median(self.ranks(lambda pos: contextlib.nullcontext())))
        strongest = max(job.strengths)
        null = []
        for concept in self.drawn:
            f = most_selective(self.z, self.labels, concept)
            null.append(float(np.median(self.clamp(self.sae, self.z, f, strongest))))
        seeds, left_out = [main], []
        for path in self.others:
            found = self.one_sae(*self.units(path))
            (seeds.append(found) if found is not None else left_out.append(path))
        value = float(np.median(main["ranks"]))
        reference = float(np.median(main["baseline"]))
        gains = [float(np.median(s["baseline"]) - np.median(s["ranks"])) for s in seeds]

        def draw(queries, rng):
            s = seeds[rng.integers(len(seeds))]
            return float(np.median(s["baseline"][queries]) - np.median(s["ranks"][queries]))

        estimate = float(np.mean(gains))
        interval = cluster_bootstrap(draw, len(self.queries), estimate=estimate, n_boot=job.n_boot, seed=job.seed)
        test = Test(name, Score(f"median rank of the best '{job.concept}' sentence", value, np.array(null), "less"),
                    reference, f"{job.n_random} random directions at the clamp's norm", job.floor, estimate, interval,
                    f"{len(self.queries)} queries and {len(seeds)} SAE seed(s)")

        test = replace(test, power=shift_power(test, seed=job.seed))
        other_where = "every" if job.where == "content" else "content"
        if job.control == "none":
            curve = [float(np.median(self.clamp(self.sae, self.z, feature, c))) for c in job.strengths]
            elsewhere = float(np.median(self.clamp(self.sae, self.z, feature, strongest, other_where)))
        else:
            curve = [float(np.median(self.shifted(self.directions[0] / self.directions[0].norm() * main["norm"] * c
                                                  / strongest))) for c in job.strengths]
            elsewhere = float("nan")
        mean_diff = float(np.median(self.shifted(self.mean_diff / self.mean_diff.norm() * main["norm"])))
        top = max(0.0, float(self.z[:, feature].max()))
        what = ("A random direction written at the clamp's norm (control: must not be supported)"
                if job.control != "none" else f"Feature f{feature} of {self.main} (confirmed: precision "
                                              f"{candidates[-1][2]} and recall {candidates[-1][3]} on the second "
                                              "sentences)")
        details = (f"{what}, clamped at {fmt(strongest)}x its largest activation ({fmt(top)}; a vector of norm up to "
                   f"{fmt(main['norm'])}, {fmt(main['norm'] / self.token_norm)}x the median token norm) at "
                   f"{'every position' if job.where == 'every' else 'content positions'} while embedding {len(self.queries)} held-out sentences about other "
                   f"concepts, moves the best '{job.concept}' sentence from median rank {fmt(unsteered)} to "
                   f"{fmt(value)} among {len(self.pool)} {job.language!r} sentences; at {other_where} positions "
                   f"{fmt(elsewhere)}. Reference, not the rule: the '{job.concept}' mean-difference vector at the same "
                   f"norm reaches {fmt(mean_diff)}.")
        notes = (f"SAE seeds without a confirmed '{job.concept}' feature, left out of the interval: "
                 f"{', '.join(left_out)}.",) if left_out else ()
        verdict = decide(claim, (test,), details=details, notes=notes)
        fig = plotting.curves({f"'{job.concept}' feature f{feature}": dict(zip(job.strengths, curve, strict=True)),
                               f"{len(null)} other concepts' features (median)": {strongest: float(np.median(null))},
                               f"{job.n_random} random directions (baseline)": {strongest: reference},
                               "mean-difference vector (reference)": {strongest: mean_diff}},
                              xlabel="clamp value (x the feature's largest activation)",
                              ylabel=f"median rank of the best '{job.concept}' sentence",
                              title=f"Steering {self.model} at {self.site}")
        fig.axes[0].axhline(unsteered, color="grey", ls=":", lw=1)
        fig.axes[0].set_yscale("log")
        saved = save_figure(fig, out, "steering.png")
        rows = [[fmt(c), fmt(c * top * float(self.sae.W_dec[feature].norm()) / self.token_norm), fmt(r)]
                for c, r in zip(job.strengths, curve, strict=True)]
        tables += [table(f"Median rank (1 = top) of the best '{job.concept}' sentence; unsteered {fmt(unsteered)}; "
                         f"random directions {fmt(reference)}; mean-difference vector {fmt(mean_diff)}",
                         ["clamp (x max)", "written norm (x median token)", "median rank"], rows),
                   table("Each SAE seed's confirmed feature and its gain over the random directions",
                         ["SAE", "feature", "gain in median rank"],
                         [[str(p), f"f{s['feature']}", round(g, 2)] for p, s, g in
                          zip([self.main, *[p for p in self.others if p not in left_out]], seeds, gains,
                              strict=True)]),
                   table(*power_table((test,)))]
        return Record("steer", title, {}, claim=claim, verdict=verdict.text, supported=verdict.supported,
                      status=verdict.status.value, tests=(test.row(),), scores=(test.score.row(),),
                      features=(int(feature),) if job.control == "none" else (), tables=tuple(tables),
                      figures=({"file": "steering.png", "caption": "The feature's curve; other concepts' features "
                                                                  "clamped at the strongest value (the null); random "
                                                                  "directions at the clamp's norm (the baseline); "
                                                                  "the mean-difference vector (a reference) and the "
                                                                  "unsteered rank (dotted)."},) if saved else ())


