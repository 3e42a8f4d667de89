"""The eval step on a real model: the shipped e5-small SAE (trained on the general-domain corpus) scored on e5's store of
the built-in sentences, rows it never saw."""

from __future__ import annotations

import pytest

import mmfeatures as mmf
from mmfeatures.pipeline import EvalStep, ExtractStep, run
from mmfeatures.sae.evaluate import evaluate_sae

SITE = "text.layer.8.resid"
SAE = "data:e5-small-layer8-seed0"


@pytest.fixture(scope="module")
def store():
    return run(ExtractStep(model="offline:e5-small", sites=(SITE,), device="cpu", progress=False)).store(SITE)


def test_eval_reports_reconstruction_probes_and_density(store, tmp_path):
    record = run(EvalStep(sae=SAE, store=str(store.path), ks=(1, 5), splice=False, max_rows=8000,
                          out=str(tmp_path / "eval")))
    core = dict(record.tables[0]["rows"])
    direct = evaluate_sae(mmf.load_sae(SAE), store, max_rows=8000)
    for name in ("nmse", "explained_variance", "l0", "dead_fraction", "dense_fraction", "shrinkage"):
        assert core[name] == pytest.approx(direct[name], abs=1e-4), name
    assert "not held out" not in record.tables[0]["title"] and core["l0"] == pytest.approx(16.0)
    probes = {(r[0], r[1]): r for r in record.tables[1]["rows"]}
    assert set(probes) == {("concept", "SAE latents"), ("concept", "neurons"), ("language", "SAE latents"),
                           ("language", "neurons")}
    for row in probes.values():                       # k = 1 and k = 5 read each label well above chance
        assert 0.6 < row[2] <= row[3] + 0.02 <= 1.02, row
    assert probes[("concept", "neurons")][4] > 0.85   # the dense probe: the ceiling
    assert record.tables[2]["rows"] == [["not run (--splice false)"]]
    assert record.metrics["l0"] == pytest.approx(core["l0"]) and "probe_language_k1_latents" in record.metrics
    assert (tmp_path / "eval" / "density.png").is_file()


@pytest.mark.slow
def test_eval_splices_the_sae_against_ablations(store, tmp_path):
    record = run(EvalStep(sae=SAE, store=str(store.path), ks=(1,), languages=("en", "ja"), out=str(tmp_path / "eval")))
    splice = record.tables[2]
    overall = {r[1]: [float(c) for c in r[2:]] for r in splice["rows"] if r[0] == "all"}
    assert overall["clean"][0] == pytest.approx(1.0)
    assert overall["zero"][0] < overall["mean"][0] < overall["sae"][0] < 1.0          # measured: 0.67, 0.80, 0.97
    assert 0.5 < overall["recovered vs zero"][0] <= 1.0
    assert record.metrics["splice_cosine_sae"] == pytest.approx(overall["sae"][0], abs=1e-3)
    ja = {r[1]: r[2:] for r in splice["rows"] if r[0] == "ja"}
    mean, low, high = (float(v) for v in ja["sae"][0].replace("[", "").replace("]", "").replace(",", "").split())
    assert low <= mean <= high and ja["zero"][2]                                         # translation retrieval too


def test_bad_eval_configs_are_named():
    with pytest.raises(mmf.InputError, match="ks"):
        EvalStep(sae=SAE, store="x", ks=(0,))
