"""The pipeline: results named by what determines them, reused by key, plans wired by typed handles.

Plumbing only: a tiny random-init model stands in for a real one (no scientific claim rests on it)."""

from __future__ import annotations

import pytest

from mmfeatures.errors import ArtifactConflictError, InputError
from mmfeatures.pipeline import AnalyzeStep, ExtractStep, PlanStep, SAEOf, StoreOf, TrainStep, run, run_plan

SITE = "text.layer.1.resid"


def extract_step(tmp_path, **kw):
    return ExtractStep(model="tiny:bert", sites=(SITE,), languages=("en", "es"), store_dir=str(tmp_path / "stores"),
                       progress=False, **kw)


def train_step(store, tmp_path, **kw):
    kw.setdefault("sae_dir", str(tmp_path / "saes"))
    kw.setdefault("progress", False)
    return TrainStep(store=store, width=64, k=4, epochs=2, batch_size=256, **kw)


def test_progress_and_device_reuse_everything_and_the_role_re_extracts(tmp_path):
    first = run(extract_step(tmp_path, out=str(tmp_path / "x")))
    assert not first.reused and first.key
    again = run(extract_step(tmp_path, out=str(tmp_path / "x"), device="cpu"))
    assert again.reused and again.key == first.key
    assert again.artifact("store", SITE) == first.artifact("store", SITE)
    batched = run(extract_step(tmp_path, out=str(tmp_path / "x"), batch_size=7))    # padding moves the last bits
    assert not batched.reused and batched.artifact("store", SITE).key != first.artifact("store", SITE).key

    store = first.artifact("store", SITE).path
    sae = run(train_step(store, tmp_path))
    assert not sae.reused and sae.inputs == {"store": first.artifact("store", SITE).key}
    same = run(train_step(store, tmp_path, device="cpu", progress=True))
    assert same.reused and same.artifact("sae") == sae.artifact("sae")


def test_changing_the_role_re_extracts(tmp_path, e5):
    """e5's role sets the prompt prefix ("query: "), so it changes the tokens and must change the store."""
    table = tmp_path / "sentences.csv"
    table.write_text("text,language,concept\nThe dog sleeps.,en,dog\nEl perro duerme.,es,dog\n")
    steps = [ExtractStep(model="offline:e5-small", sites=(SITE,), data=str(table), role=role, progress=False,
                         store_dir=str(tmp_path / "stores")) for role in ("raw", "query", "raw")]
    raw, query, again = (run(s) for s in steps)
    assert not query.reused and query.key != raw.key and again.reused
    assert query.store(SITE).n_rows > raw.store(SITE).n_rows                    # "query: " adds tokens


def test_a_crash_that_left_a_foreign_folder_is_named_not_reused(tmp_path):
    store = run(extract_step(tmp_path)).artifact("store", SITE).path
    trained = run(train_step(store, tmp_path)).artifact("sae")
    folder = tmp_path / "saes" / "elsewhere"
    folder.mkdir(parents=True)
    (folder / "cfg.json").write_text("{}")                        # half an SAE without mmfeatures' header
    from mmfeatures.activations import ActivationStore
    from mmfeatures.sae import TopK, TrainConfig, train

    cfg = TrainConfig(TopK(k=4), 64, epochs=2, batch_size=256, name="elsewhere")
    with pytest.raises(ArtifactConflictError, match="holds no mmfeatures SAE header"):
        train(ActivationStore(store), cfg, tmp_path / "saes", progress=False)
    assert trained.key in trained.path


def test_a_plan_wires_steps_by_handles_and_reruns_from_its_records(tmp_path):
    plan = (PlanStep("1-extract", extract_step(tmp_path)),
            PlanStep("2-train", train_step(StoreOf("1-extract", SITE), tmp_path)),
            PlanStep("3-crosslingual", AnalyzeStep(stores=(StoreOf("1-extract", SITE),), sae=SAEOf("2-train"),
                                                   n_perm=19)))
    done = run_plan(plan, tmp_path / "runs", run, progress=False)
    assert [o.name for o in done] == ["1-extract", "2-train", "3-crosslingual"]
    analysis = done[2].record
    assert analysis.inputs["sae"] == done[1].record.artifact("sae").key          # lineage by key, not by path
    assert analysis.config["stores"] == [done[0].record.artifact("store", SITE).path]
    again = run_plan(plan, tmp_path / "runs", run, progress=False)
    assert all(o.reused for o in again) and [o.record.key for o in again] == [o.record.key for o in done]
    with pytest.raises(InputError, match="reads SAEOf\\(step='2-train', index=0\\) before that step runs"):
        run_plan(plan[:1] + plan[2:], tmp_path / "other", run, progress=False)


@pytest.mark.parametrize("spec", ["tuxpaint:5", "libreoffice:0", "libreoffice:many", "libreoffice-heldout:-3"])
def test_a_bad_corpus_slice_is_named_before_any_fetch(spec):
    from mmfeatures.pipeline.extract import load_data

    with pytest.raises(InputError, match=r"a slice is 'libreoffice:N'"):
        load_data(spec)


def test_train_step_trains_one_sae_per_seed_in_one_pass(tmp_path):
    """Issue 33: several SAEs per `train` call, with their metrics in the record (no re-reading metrics.json)."""
    store = str(run(extract_step(tmp_path)).artifact("store", SITE).path)
    both = run(train_step(store, tmp_path, seeds=(1,)))
    saes = [a for a in both.artifacts if a.kind == "sae"]
    assert len(saes) == 2 and saes[0].key != saes[1].key and not both.reused
    assert both.tables[0]["columns"][0] == "seed" and [r[0] for r in both.tables[0]["rows"]] == [0, 1]
    assert 0 < both.metrics["nmse"] < 2 and 0 < both.metrics["seed1/nmse"] < 2
    alone = run(train_step(store, tmp_path, seed=1))                # the same SAE: found by its key
    assert alone.reused and alone.artifact("sae").key == saes[1].key
    assert alone.metrics["nmse"] == both.metrics["seed1/nmse"]
    assert SAEOf("t", index=1).resolve({"t": both}) == saes[1].path
    with pytest.raises(InputError, match="repeat a seed"):
        train_step(store, tmp_path, seeds=(0,))
