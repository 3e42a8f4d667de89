"""The results page is generated from results.json alone, and says what the numbers say."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from consistency_report import save_results, write_report  # noqa: E402
from consistency_study import score  # noqa: E402

from mmfeatures.analysis import planted  # noqa: E402


def fake_results(strong: str) -> dict:
    """Two 'models' on planted data: the ``strong`` one is concept-driven and weakly language-marked,
    the other language-driven with no concept signal."""
    results = {}
    for model, layers in {"offline:e5-small": [3, 7, 11], "offline:minilm-l6": [1, 3, 5]}.items():
        for i, layer in enumerate(layers):
            p = (planted(seed=i, language_scale=0.5) if model == strong else
                 planted(seed=i, concept_scale=0.0, language_scale=4.0))
            z, kind = p.units()
            units = {"neurons": (p.x, True), "random-directions": (z[:, kind == "noise"], False),
                     **{f"sae-{w}": (z, False) for w in (1536, 3072, 6144)}}
            for name, (values, signed) in units.items():
                results[f"{model}|{layer}|{name}"] = score(values, p.labels, signed=signed, n_perm=3)
    results["_meta"] = {"n_perm": 3, "k": 16, "widths": [1536, 3072, 6144], "epochs": 1, "dataset": "planted",
                        "rows": len(p.labels), "device": "cpu"}
    return results


@pytest.mark.parametrize("strong, verdict", [("offline:e5-small", "as expected, e5 is the more consistent"),
                                             ("offline:minilm-l6", "against expectation")])
def test_report_is_computed_from_results(tmp_path, strong, verdict):
    results = fake_results(strong)
    save_results(tmp_path, results)
    page = write_report(tmp_path).read_text()
    assert verdict in page
    e5_top = results["offline:e5-small|11|sae-6144"]["scores"]["multilingual"]
    assert f"{e5_top['value']:.3f} ({e5_top['null_mean']:.3f}" in page
    for figure in ("multilingual_by_layer", "overlap_by_layer", "auroc_distributions"):
        assert f"figures/{figure}.png" in page and (tmp_path / "figures" / f"{figure}.png").stat().st_size > 1000
    assert "Cross-modal consistency" in page and np.isfinite(e5_top["value"])


def test_matching_report_is_computed_from_results(tmp_path):
    import json

    from matching_report import write_report as write_matching

    def cell(value, null):
        return {"metric": "m", "value": value, "null_mean": null, "null_sd": 0.01, "p_value": 0.01, "n_perm": 100}

    results = {"seeds": {"features_median_max_r": 0.61, "features_alive": 3000, "features_null": [0.05, 0.06],
                         "shared_fraction_0.5": 0.4, "paragraph_median_max_r": 0.7, "paragraph_null": [0.1],
                         "hungarian_mean_r": 0.5, "decoder_cosine_median": 0.4, "sparse_match_mean_r": 0.45,
                         "sparse_match_pairs": 2900, "objective_gap": 1.0, "objective_exact": 100.0,
                         "rows": 1000, "paragraphs": 100, "features_max_r": [0.6, 0.7, 0.2]},
               "_meta": {"rows": 100, "data": "libreoffice-heldout:100", "languages": ["en"], "dataset": "abc",
                         "n_perm": 100, "nulls": "issue 19", "saes": {}}}
    for other, cka in (("offline:e5-small-enpt", 0.9), ("offline:minilm-l6", 0.4),
                       ("offline:minilm-l6+random-init-0", 0.3), ("offline:e5-small+random-init-0", 0.1)):
        for a, b in ((3, 3), (11, 11)):
            results[f"{other}|{a}|{b}"] = {"neurons_median_max_r": cka, "neurons_null": [0.05],
                                           "cka": cell(cka, 0.02), "svcca": cell(0.5, 0.1), "rsa": cell(0.3, 0.0)}
    for other, r in (("minilm", 0.6), ("minilm-random", 0.55)):
        results[f"features|{other}"] = {"features_median_max_r": r, "features_null": [0.4], "alive": [1000, 900],
                                        "features_cka_matched": cell(r + 0.1, 0.5), "features_max_r": [r]}
    (tmp_path / "matching.json").write_text(json.dumps(results))
    page = write_matching(tmp_path).read_text()
    assert "| SAE features, seed 0 → seed 1, per token | 0.610 (0.055) | 40%" in page
    assert "| linear CKA | 0.900 | 0.400 | 0.300 | 0.100 | yes |" in page
    assert "| SVCCA | 0.500 | 0.500 | 0.500 | 0.500 | no |" in page
    assert "than its untrained copy on **2 of 4** measures" in page
    assert "median max r +0.050 (the untrained copy already reaches 0.550" in page and "Stale" not in page
    assert "matched-feature CKA +0.050. The matched-feature CKA separates them too." in page
    assert (tmp_path / "figures" / "matching_seeds.png").is_file()
    del results["_meta"]["saes"]                       # computed before the shipped SAEs were rebuilt
    (tmp_path / "matching.json").write_text(json.dumps(results))
    assert "Stale: the SAE sections" in write_matching(tmp_path).read_text()
    del results["_meta"]["nulls"]
    (tmp_path / "matching.json").write_text(json.dumps(results))
    assert "Stale" in write_matching(tmp_path).read_text()


def test_crossmodal_section_is_computed_from_results(tmp_path):
    """The cross-modal section renders crossmodal_study.score() outputs: every cell and sentence from the JSON."""
    import json

    from crossmodal_study import score as crossmodal_score

    p = planted(seed=0)
    z, _ = p.units()
    noise = planted(seed=1, signal=False)
    results = {"_meta": {"model": "offline:e5-emoji-clip", "width": 64, "k": 8, "n_perm": 3, "sae_rows": 100,
                         "heldout_emoji": 10, "version": "issue 19"}}
    for subset in ("Tux Paint stamps", "photos", "held-out emoji", "seen emoji (fit check)"):
        results[f"trained|{subset}|SAE features"] = crossmodal_score(z, p.labels, 3)
        results[f"untrained image tower|{subset}|SAE features"] = crossmodal_score(
            np.maximum(noise.x, 0), noise.labels, 3)
    save_results(tmp_path, fake_results("offline:e5-small"))
    (tmp_path / "crossmodal.json").write_text(json.dumps(results))
    page = write_report(tmp_path).read_text()
    real = results["trained|Tux Paint stamps|SAE features"]["scores"]["multimodal"]
    assert f"{real['value']:.3f} ({real['null_mean']:.3f}" in page
    assert f"Tux Paint stamps: {100 * real['value']:.1f}% of alive SAE features are multimodal" in page
    assert "fit check" in page and "Stale" not in page.split("## Cross-modal")[1]
    assert (tmp_path / "figures" / "crossmodal_modality_score.png").stat().st_size > 1000
    assert "Not run yet" not in page


def test_the_report_says_when_an_effect_cannot_be_computed_or_detected():
    """Last stop's report printed `nan [nan, nan]` for a statistic with one sentence per concept, and `inf` as the
    smallest detectable effect; they now read as what they mean."""
    from mmfeatures.report import _effect, _mde

    nan = float("nan")
    assert _effect({"effect": nan, "low": nan, "high": nan}) == "cannot be computed"
    assert _effect({"effect": 0.0961, "low": 0.082, "high": 0.111}) == "0.0961 [0.082, 0.111]"
    assert _mde(float("inf")) == "none detectable" and _mde(0.0123) == "0.0123"
