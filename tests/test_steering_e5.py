"""The Golden-Gate analog on a real model, with the shipped SAE (trained on LibreOffice's help, never on the
sentences used here): clamping e5's 'dog' feature within its range, against other concepts' features and a
mean-difference vector; and what splicing the SAE in costs, over three seeds."""

from __future__ import annotations

import numpy as np
import pytest

import mmfeatures as mmf
from mmfeatures.pipeline import ExtractStep, FidelityStep, run

SITE = "text.layer.8.resid"
SHIPPED = tuple(f"data:e5-small-layer8-seed{s}" for s in range(3))


@pytest.fixture(scope="module")
def store():
    """e5-small layer 8, per token, on the built-in sentences (in the user cache, shared with notebooks)."""
    return run(ExtractStep(model="offline:e5-small", sites=(SITE,), device="cpu", progress=False)).store(SITE)


def test_clamping_the_dog_feature_within_its_range_is_measured_against_other_features_and_a_baseline(quick_demo):
    """The quick demo's steering step (the shipped SAEs on e5-small's store of six languages, 19 other concepts)."""
    record = next(s.record for s in quick_demo.stages if s.name == "14-steer")
    assert record.config["sae"] == SHIPPED[0] and tuple(record.config["seeds"]) == SHIPPED[1:]
    table = record.tables[0]
    curve = [float(row[2]) for row in table["rows"]]
    norms = [float(row[1]) for row in table["rows"]]
    assert [float(row[0]) for row in table["rows"]] == [0.0, 0.25, 0.5, 1.0]     # within the observed range
    assert norms[0] == 0 and all(0 < n < 1.5 for n in norms[1:])               # written norm vs a token's
    assert curve[0] > 50 and curve[-1] < curve[0], curve                        # unsteered far; the clamp pulls
    assert all(b <= a for a, b in zip(curve, curve[1:], strict=False)), curve   # monotone in the clamp
    score = record.scores[0]
    assert score["n_perm"] == 19
    assert "mean-difference vector" in record.verdict and "held-out sentences" in record.verdict
    seeds = record.tables[1]["rows"]                  # each seed picks its own feature, against the same concepts
    assert [r[0] for r in seeds[:3]] == list(SHIPPED) and seeds[3][0] == "mean, 95% interval over 3 seeds"
    gained = [r[1] for r in seeds[:3]]
    assert gained[0] == pytest.approx(score["null_mean"] - score["value"], abs=1e-3)   # the main run's effect
    low = float(seeds[3][1].split("[")[1].split(",")[0])
    assert record.supported == (score["p_value"] <= 0.05 and score["value"] < score["null_mean"] and low > 0)


def test_splicing_the_shipped_saes_in_at_content_tokens_keeps_most_of_the_model(store):
    record = run(FidelityStep(saes=SHIPPED, store=str(store.path), seeds=True, languages=("en", "es", "ja", "sw"),
                              out=None))
    table = record.tables[0]
    columns, rows = table["columns"], table["rows"]
    assert len(rows) == 4 and rows[-1][0].startswith("mean [95% interval] over 3 seeds")
    assert "content tokens only" in table["title"]
    for metric in ("recovered_cosine_vs_zero", "recovered_retrieval_vs_zero", "recovered_crosslingual_vs_mean"):
        values = np.array([row[columns.index(metric)] for row in rows[:-1]], float)
        assert np.all((values > 0.3) & (values <= 1.05)), (metric, values)
    cosine = np.array([row[columns.index("cosine")] for row in rows[:-1]], float)
    assert np.all(cosine < 1.0) and np.ptp(cosine) < 0.05          # seeds agree; splicing is never free
    assert mmf.load_sae(SHIPPED[0]).metadata.get("hook_name") == SITE
