"""Write docs/results/matching.md and its figure from matching.json (see matching_study.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

NAMES = {"offline:e5-small-enpt": "e5-small-enpt (positive control: same weights)",
         "offline:minilm-l6": "MiniLM-L6 (independently trained)",
         "offline:minilm-l6+random-init-0": "MiniLM-L6 random-init (null for MiniLM)",
         "offline:e5-small+random-init-0": "e5-small random-init (architecture and tokenizer only)"}
MINILM, MINILM_NULL = "offline:minilm-l6", "offline:minilm-l6+random-init-0"


def _cell(s: dict) -> str:
    from mmfeatures.analysis.stats import p_text

    return f"{s['value']:.3f} ({s['null_mean']:.3f} ± {s['null_sd']:.3f}; {p_text(s['p_value'], s['n_perm'])})"


def _stale(meta: dict) -> list[str]:
    if meta.get("nulls") == "issue 19" and "saes" not in meta:
        return ["> **Stale: the SAE sections were computed with the SAEs shipped before issue 31 (trained on "
                "LibreOffice's help, a domain that lacks most everyday concepts); the neuron sections stand.** "
                "`scripts/matching_study.py` recomputes the SAE sections with the shipped SAEs of today (`make "
                "studies`); the demo's `19-match-unrelated` step gives the cross-model verdict on them.", ""]
    if meta.get("nulls") == "issue 19":
        return []
    return ["> **Stale: these numbers predate issue 19's fixes; do not cite them as cross-model evidence.** "
            "`scripts/matching_study.py` recomputes them.", ""]


def _training() -> str:
    """What the shipped e5 SAEs were trained on, from their card (data/saes/card.json)."""
    from mmfeatures.datasets.builtin import data_root

    card = {c["name"]: c for c in json.loads((data_root() / "saes" / "card.json").read_text())}
    seed0 = card["e5-small-layer8-seed0"]
    return (f"{seed0['rows'] / 1e6:.2f} M tokens of the general-domain corpus `{seed0['data']}` (fortunes, FreeDict's "
            "examples, Tux Paint's captions, LibreOffice's help; data/saes/README.md)")


def _seeds(seeds: dict, out: Path) -> list[str]:
    from mmfeatures import plotting

    null, para_null = np.array(seeds["features_null"]), np.array(seeds["paragraph_null"])
    lines = ["## Universality across SAE seeds", "",
             "The shipped SAEs `data:e5-small-layer8-seed0` and `-seed1` (TopK, 1,536 latents, k = 16, trained on "
             f"{_training()}) differ only in their seed. Here they read "
             f"{seeds['rows']:,} tokens of {seeds['paragraphs']:,} held-out English paragraphs.", "",
             "| | median max r (rows-shuffled null) | share with r ≥ 0.5 | published |", "|---|---|---|---|",
             f"| SAE features, seed 0 → seed 1, per token | {seeds['features_median_max_r']:.3f} "
             f"({null.mean():.3f}) | {100 * seeds['shared_fraction_0.5']:.0f}% | about 30% shared at large width "
             "(Paulo & Belrose 2025); 0.72 median (Bricken et al. 2023) |",
             f"| the same, per paragraph (max-pooled) | {seeds['paragraph_median_max_r']:.3f} "
             f"({para_null.mean():.3f}) | | |", "",
             f"- {seeds['features_alive']:,} features are alive on these tokens.",
             f"- Hungarian one-to-one matching has mean r {seeds['hungarian_mean_r']:.3f}; the median decoder "
             f"cosine of its pairs is {seeds['decoder_cosine_median']:.3f}.",
             f"- Sparse top-8 bipartite matching pairs {seeds['sparse_match_pairs']:,} features with mean r "
             f"{seeds['sparse_match_mean_r']:.3f}; its objective gap to the exact solution is "
             f"{seeds['objective_gap']:.2f} of {seeds['objective_exact']:.1f} "
             f"({100 * seeds['objective_gap'] / seeds['objective_exact']:.2f}%).", "",
             "The published numbers are references, not targets: they come from far larger SAEs and models, and "
             "Bricken et al.'s neuron baseline (0.46) compares two transformers trained with different seeds, of "
             "which no pair exists offline here, so this page has no neuron row for it.", ""]
    fig = plotting.distributions({"SAE features, seed 0 vs 1 (per token)": np.array(seeds["features_max_r"])},
                                 xlabel="max correlation", range_=(0.0, 1.0),
                                 title="Best-match correlation per feature")
    (out / "figures").mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "figures" / "matching_seeds.png", dpi=120)
    return lines + ["![matching_seeds](figures/matching_seeds.png)", ""]


def _neurons(rows: list) -> list[str]:
    order = list(NAMES)
    lines = ["## Neurons across models, layer by layer", "",
             "Rows are mean-pooled paragraphs (the tokenizers differ). Neurons are matched on |r|. Each cell reads "
             "`value (null mean ± sd; p)`; the null shuffles the rows of one side.", "",
             "| e5-small layer | other model (layer) | neurons: median max abs r (null) | linear CKA | SVCCA | RSA |",
             "|---|---|---|---|---|---|"]
    for (other, a, b), v in sorted(rows, key=lambda r: (order.index(r[0][0]), int(r[0][1]))):
        lines.append(f"| {a} | {NAMES.get(other, other)} ({b}) | {v['neurons_median_max_r']:.3f} "
                     f"({np.mean(v['neurons_null']):.3f}) | {_cell(v['cka'])} | {_cell(v['svcca'])} | "
                     f"{_cell(v['rsa'])} |")
    measures = {"median max abs r": lambda v: v["neurons_median_max_r"], "linear CKA": lambda v: v["cka"]["value"],
                "SVCCA": lambda v: v["svcca"]["value"], "RSA": lambda v: v["rsa"]["value"]}
    others = [o for o in order if any(k[0] == o for k, _ in rows)]
    lines += ["", "Mean over the three layer pairs:", "",
              "| measure | " + " | ".join(NAMES[o] for o in others) + " | MiniLM beats its random-init copy? |",
              "|---" * (len(others) + 2) + "|"]
    beats = 0
    for name, get in measures.items():
        means = {o: np.mean([get(v) for k, v in rows if k[0] == o]) for o in others}
        win = MINILM in means and MINILM_NULL in means and means[MINILM] > means[MINILM_NULL]
        beats += win
        lines.append(f"| {name} | " + " | ".join(f"{means[o]:.3f}" for o in others) + f" | {'yes' if win else 'no'} |")
    lines += ["", f"MiniLM, which was trained, is closer to e5-small than its untrained copy on **{beats} of "
              f"{len(measures)}** measures. Every measure is far above its rows-shuffled null, the untrained "
              "copies included: they share the tokenizer's token identities and each paragraph's length, so a "
              "rows-shuffled null alone says little; the random-init copy is the null a real match must beat.", ""]
    return lines


def _features(results: dict) -> list[str]:
    real, null = results.get("features|minilm"), results.get("features|minilm-random")
    if not (real and null):
        return []
    lines = ["## SAE features across models", "",
             f"The shipped SAEs (trained on {_training()}, never on these paragraphs): e5-small layer 8 "
             "against MiniLM-L6 layer 4 and against MiniLM's random-init copy at layer 4, each with its own SAE; "
             "features max-pooled per paragraph. The CKA is computed on the 256 best-matched pairs, against the "
             "same selection redone on shuffled rows (a null that pays for the selection; random subsets do not).",
             "", "| e5-small layer 8 against | alive (A, B) | median max r (rows-shuffled null) | CKA of the 256 "
             "best-matched pairs |", "|---|---|---|---|"]
    for name, v in (("MiniLM-L6 layer 4", real), ("MiniLM-L6 random-init, layer 4", null)):
        lines.append(f"| {name} | {v['alive'][0]:,}, {v['alive'][1]:,} | {v['features_median_max_r']:.3f} "
                     f"({np.mean(v['features_null']):.3f}) | {_cell(v['features_cka_matched'])} |")
    gap = real["features_median_max_r"] - null["features_median_max_r"]
    cka_gap = real["features_cka_matched"]["value"] - null["features_cka_matched"]["value"]
    base = null["features_median_max_r"]
    verdict = ("it is the larger part of the match" if gap > base else
               f"the untrained copy already reaches {base:.3f}, so most of a feature's best match comes from what "
               "any encoder of these tokens shares")
    cka = ("The matched-feature CKA does not separate the two: the untrained copy's is as high or higher, so it "
           "cannot serve as evidence of shared features here." if cka_gap <= 0.01 else
           "The matched-feature CKA separates them too.")
    paired = ""
    a, b = np.asarray(real["features_max_r"]), np.asarray(null["features_max_r"])
    if len(a) == len(b):                    # the same alive e5 features on both sides: a paired difference
        diff = a - b
        rng = np.random.default_rng(0)
        boot = [np.median(diff[rng.integers(0, len(diff), len(diff))]) for _ in range(1000)]
        paired = (f" Per feature, the median of (max r in MiniLM) - (max r in its copy) is {np.median(diff):+.3f}, "
                  f"95% bootstrap interval over features [{np.percentile(boot, 2.5):+.3f}, "
                  f"{np.percentile(boot, 97.5):+.3f}] (one SAE per side: not an interval over SAE seeds).")
    lines += ["", f"What MiniLM's training adds over its untrained copy: median max r {gap:+.3f} ({verdict}); "
              f"matched-feature CKA {cka_gap:+.3f}. {cka}{paired}", ""]
    return lines


def write_report(out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")

    results = json.loads((out / "matching.json").read_text())
    meta = results.get("_meta", {})
    lines = ["# Do different SAEs and models learn the same units?", "",
             f"*Generated by `scripts/matching_study.py` on {time.strftime('%Y-%m-%d')} from "
             "`docs/results/matching.json`; do not edit by hand.*", "", *_stale(meta),
             f"The rows are {meta.get('rows', '?')} English paragraphs of LibreOffice's help from the held-out "
             f"split (`{meta.get('data', '?')}`, languages {meta.get('languages', '?')}, fingerprint "
             f"`{meta.get('dataset', '?')}`): text that no shipped SAE was trained on. Correlations are streaming "
             "Pearson (`mmfeatures.analysis.matching`). A unit's *max r* is its best correlation with any unit of "
             "the other side.", ""]
    if "seeds" in results:
        lines += _seeds(results["seeds"], out)
    rows = [(k.split("|"), v) for k, v in results.items() if k.count("|") == 2]
    if rows:
        lines += _neurons(rows)
    lines += _features(results)
    lines += ["## Reproduce", "", "```bash", ".venv/bin/python scripts/matching_study.py",
              ".venv/bin/python scripts/matching_study.py --report", "```", ""]
    path = out / "matching.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
