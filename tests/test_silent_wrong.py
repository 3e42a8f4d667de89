"""Issue 32: inputs that gave a wrong answer without an error, or lost work. Each test failed on the code before
the fix (noted per test)."""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pytest
import torch

import mmfeatures as mmf
from mmfeatures.activations import extract
from mmfeatures.encoders.tiny import save_tiny
from mmfeatures.errors import InputError

TEXTS = ["a dog", "the cat sat on the mat", "hello world", "x y z"]


class Payload:
    """A class a pickled file names: loading it would need this module (a stand-in for a planted payload)."""


def run(encoder, sites, tmp_path, **kw):
    return extract(encoder, TEXTS, sites, store_dir=tmp_path / "stores", progress=False, **kw)


def test_a_site_named_twice_is_refused(tmp_path):
    """Before: `--sites S,S` wrote every row twice under S's normal key, and every later extract reused it."""
    with pytest.raises(InputError, match=r"more than once"):
        run("tiny:bert", ["text.layer.1.resid", "text.layer.1.resid"], tmp_path)
    once = run("tiny:bert", ["text.layer.1.resid"], tmp_path)
    assert once.computed_shards == 1 and once.stores["text.layer.1.resid"].n_rows == len(TEXTS)


def test_a_checkpoint_edited_in_place_gets_new_stores(tmp_path):
    """Before: the weights fingerprint sampled 4,096 values per tensor at a stride, so changing a value between two
    samples and saving over the folder kept the key, and extract returned the old model's activations."""
    from transformers import AutoConfig, AutoModel

    folder = save_tiny("tiny:bert", tmp_path / "model")
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_pretrained(folder, intermediate_size=256))   # 8,192-value matrices
    model.save_pretrained(folder)
    site = ["text.layer.1.resid"]
    before = run(mmf.load_encoder(f"hf:{folder}"), site, tmp_path)
    weight = model.encoder.layer[0].intermediate.dense.weight
    stride = weight.numel() // 4096
    assert stride > 1
    with torch.no_grad():
        weight.view(-1)[1] += 5.0                                    # a value the old 4,096-value sample skipped
    model.save_pretrained(folder)
    after = run(mmf.load_encoder(f"hf:{folder}"), site, tmp_path)
    assert after.computed_shards == 1
    assert after.stores[site[0]].key != before.stores[site[0]].key
    assert not np.allclose(after[site[0]], before[site[0]])


def test_the_latent_set_key_follows_the_architecture(tmp_path):
    """Before: sae_digest hashed the class name (always SAE), shapes and tensors, so the same weights with another k
    (a SAELens cfg.json edited, or sae.arch set) reused the latent set encoded with the old k."""
    from mmfeatures.activations import write_store
    from mmfeatures.sae import SAE, TopK, encode_store

    rng = np.random.default_rng(0)
    store = write_store(rng.normal(size=(40, 8)).astype(np.float32), [{"id": f"row{i}"} for i in range(40)],
                        model="planted", site="text.layer.0.resid", source="test", store_dir=tmp_path)
    sae = SAE(8, 32, TopK(k=2), seed=0)
    two = encode_store(store, sae, root=tmp_path / "latents", progress=False)
    sae.arch = TopK(k=6)
    six = encode_store(store, sae, root=tmp_path / "latents", progress=False)
    assert six.path != two.path
    assert (two.pooled()[0] > 0).sum(1).max() == 2 and (six.pooled()[0] > 0).sum(1).max() == 6


@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory):
    """A planted cross-lingual store, its random-init copy's, another model's, and one trained SAE."""
    from planted_stores import draw, train_saes, write

    root = tmp_path_factory.mktemp("planted-checks")
    scored = write(draw(), root, "model")["text.embed"]
    return {"root": root, "scored": scored,
            "copy": write(draw(signal=False), root, "model+random-init-0")["text.embed"],
            "other": write(draw(signal=False), root, "other")["text.embed"],
            "sae": train_saes(write(draw(train=True), root, "model")["text.embed"], seeds=(0,), epochs=2)[0]}


def test_a_null_store_must_be_a_random_init_copy_of_the_model(planted_dir):
    """Before: analyze --null-stores took any store (another model) as the random-init copy, and the record claimed
    an effect beyond it."""
    from mmfeatures.pipeline import AnalyzeStep, run

    def step(null):
        return AnalyzeStep(stores=(planted_dir["scored"],), sae=planted_dir["sae"], null_stores=(null,),
                           n_perm=19, n_baseline=2, n_boot=20, simulations=1, out=None)

    with pytest.raises(InputError, match="not a random-init copy"):
        run(step(planted_dir["other"]))
    with pytest.raises(InputError, match="not a random-init copy"):
        run(step(planted_dir["scored"]))                                    # the model itself
    assert run(step(planted_dir["copy"])).status                           # a copy is accepted


@pytest.mark.parametrize("command", ["analyze", "match"])
def test_a_seed_that_is_the_primary_sae_under_another_path_is_refused(planted_dir, command):
    """Before: --seeds (analyze) and --seeds-a (match) accepted the primary SAE under another spelling or a copy of
    its folder, and printed a zero-width interval 'over 3 seeds'."""
    import shutil

    from mmfeatures.pipeline import AnalyzeStep, MatchStep, run

    sae = planted_dir["sae"]
    copy = shutil.copytree(sae, planted_dir["root"] / f"copy-{command}")
    spelled = f"{sae}/"
    for seeds in ((copy,), (spelled,)):
        seeds = tuple(str(s) for s in seeds)
        if command == "analyze":
            step = AnalyzeStep(stores=(planted_dir["scored"],), sae=sae, seeds=seeds, n_perm=19, n_baseline=2,
                               n_boot=20, simulations=1, out=None)
        else:
            step = MatchStep(store_a=planted_dir["scored"], store_b=planted_dir["scored"], sae_a=sae, seeds_a=seeds,
                             n_perm=19, n_boot=20, simulations=1, out=None)
        with pytest.raises(InputError, match="same SAE"):
            run(step)


def _figure_step(tmp_path):
    """A step with a concept-named figure whose compute can fail after drawing it (run_step, as every step runs)."""
    from dataclasses import dataclass

    import matplotlib.pyplot as plt

    from mmfeatures.pipeline.record import Record, opt, run_step, save_figure

    @dataclass(frozen=True)
    class Step:
        concept: str = opt("dog", "the concept")
        fail: bool = opt(False, "fail after the figure", volatile=True)
        out: str = opt(str(tmp_path / "run"), "folder", volatile=True)

    def compute(step, out):
        fig = plt.figure()
        fig.suptitle(step.concept)
        save_figure(fig, out, "heatmap.png")
        if step.fail:
            raise RuntimeError("killed after the first figure")
        return Record("figure", step.concept, {}, figures=({"file": "heatmap.png", "caption": step.concept},))

    return Step, lambda step: run_step("figure", step, lambda out: compute(step, out))


def test_a_failed_run_leaves_the_previous_record_and_its_own_figures(tmp_path):
    """Before: figures were written in place during compute, so a run failing after its first figure left it beside
    the previous record's result.json, which a rerun reused: one concept's heatmap under another's record."""
    Step, run = _figure_step(tmp_path)
    dog = run(Step(concept="dog"))
    heatmap = tmp_path / "run" / "heatmap.png"
    drawn = heatmap.read_bytes()
    with pytest.raises(RuntimeError, match="killed"):
        run(Step(concept="cat", fail=True))
    assert heatmap.read_bytes() == drawn                                  # the dog record's own figure
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]      # no staging left
    again = run(Step(concept="dog"))
    assert again.reused and again.key == dog.key


def test_a_truncated_figure_is_recomputed(tmp_path):
    """Before: reuse checked that a figure existed, not that it was the one written."""
    Step, run = _figure_step(tmp_path)
    run(Step())
    heatmap = tmp_path / "run" / "heatmap.png"
    whole = heatmap.read_bytes()
    heatmap.write_bytes(whole[: len(whole) // 2])
    again = run(Step())
    assert not again.reused and heatmap.read_bytes() == whole


@pytest.mark.parametrize("files", [{}, "renamed", "missing", ["cfg.json", "sae_weights.safetensors"]],
                         ids=["empty", "renamed", "missing-entry", "a-list"])
def test_an_sae_header_without_its_checksums_does_not_load(tmp_path, files):
    """Before: an SAE header whose 'files' map was empty, renamed or missing an entry loaded unchecked (a flipped
    weight then loaded), and a list raised a raw TypeError."""
    import json

    from mmfeatures.errors import CorruptFileError
    from mmfeatures.sae import SAE, TopK, load_sae, save_sae

    folder = save_sae(SAE(8, 16, TopK(k=2)), tmp_path / "sae", model_name="tiny:bert", hook_name="text.layer.1.resid")
    header = json.loads((folder / "mmfeatures.json").read_text())
    weights = folder / "sae_weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF                                                  # a flipped weight
    weights.write_bytes(bytes(data))
    if files == "renamed":
        header["checksums"] = header.pop("files")
    elif files == "missing":
        del header["files"]["sae_weights.safetensors"]
    else:
        header["files"] = files
    (folder / "mmfeatures.json").write_text(json.dumps(header))
    with pytest.raises(CorruptFileError, match="checksum"):
        load_sae(str(folder))


def test_a_token_file_whose_checksum_was_removed_is_not_trusted(tmp_path):
    """Before: a null tokens_checksum turned every token string into '' unchecked; now reading refuses it and a
    rerun of the same extract recomputes the shard."""
    import json

    from mmfeatures.activations import ActivationStore
    from mmfeatures.errors import CorruptFileError

    site = "text.layer.1.resid"
    store = run("tiny:bert", [site], tmp_path, pooling="none").stores[site]
    tokens = store.provenance().token
    side, meta = store.path / "shards" / "00000.json", store.path / "metadata.json"
    info, header = json.loads(side.read_text()), json.loads(meta.read_text())
    info["tokens_checksum"] = header["shards"][0]["tokens_checksum"] = None     # in the sidecar and the manifest
    side.write_text(json.dumps(info))
    meta.write_text(json.dumps(header))
    (store.path / "shards" / "00000.tokens.json").write_text(json.dumps(["x"] * len(tokens)))
    with pytest.raises(CorruptFileError, match="no recorded checksum"):
        ActivationStore(store.path).provenance()
    again = run("tiny:bert", [site], tmp_path, pooling="none")
    assert again.computed_shards == 1 and list(again.stores[site].provenance().token) == list(tokens)


def test_a_kill_while_a_checkpoint_is_written_resumes_from_the_one_before(tmp_path, monkeypatch):
    """Before: the new checkpoint was renamed into place before its checksum was written, so a kill in between left
    a torn pair that every resume refused ('delete the checkpoint'): training restarted from step 0. Here the kill
    comes while the second checkpoint's checksum is computed; the resumed run ends where an uninterrupted one does."""
    import mmfeatures.disk
    from mmfeatures.activations import write_store
    from mmfeatures.sae import TopK, TrainConfig, train

    rng = np.random.default_rng(0)
    store = write_store(rng.normal(size=(512, 8)).astype(np.float32), [{"id": f"r{i}"} for i in range(512)],
                        model="planted", site="text.layer.0.resid", source="test", store_dir=tmp_path)
    config = TrainConfig(TopK(k=2), 16, batch_size=64, epochs=3, checkpoint_every=6, log_every=1, device="cpu")
    whole = train(store, config, tmp_path / "whole", progress=False).sae
    real, calls = mmfeatures.disk.file_sha256, []

    def killed(path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed while writing the second checkpoint")
        return real(path)

    for module in ("mmfeatures.sae.train", "mmfeatures.sae.checkpoints"):
        monkeypatch.setattr(f"{module}.file_sha256", killed, raising=False)
    with pytest.raises(KeyboardInterrupt):
        train(store, config, tmp_path / "resumed", progress=False)
    monkeypatch.undo()
    steps = []
    resumed = train(store, config, tmp_path / "resumed", progress=False, on_log=lambda step, _: steps.append(step))
    assert steps[0] == 7                                          # from the first checkpoint (step 6), not step 0
    torch.testing.assert_close(resumed.sae.W_enc, whole.W_enc, rtol=0, atol=0)


@pytest.mark.parametrize("damage", ["shard", "sidecar-rows", "header"])
def test_a_damaged_latent_set_is_repaired_by_the_ordinary_rerun(tmp_path, damage):
    """Before: a damaged latent-set shard raised 'rerun encode_store(store, sae)', but the rerun opened the complete
    set and failed again, naming no folder to delete; now the rerun recomputes what is damaged."""
    import json

    from mmfeatures.activations import write_store
    from mmfeatures.errors import CorruptFileError
    from mmfeatures.sae import SAE, TopK, encode_store

    rng = np.random.default_rng(0)
    store = write_store(rng.normal(size=(60, 8)).astype(np.float32), [{"id": f"r{i}"} for i in range(60)],
                        model="planted", site="text.layer.0.resid", source="test", store_dir=tmp_path,
                        shard_examples=20)
    sae = SAE(8, 32, TopK(k=3), seed=0)
    first = encode_store(store, sae, root=tmp_path / "latents", progress=False)
    want = first.pooled()[0]
    shard, side = first.path / "shards" / "00001.safetensors", first.path / "shards" / "00001.json"
    if damage == "shard":
        data = bytearray(shard.read_bytes())
        data[-5] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif damage == "sidecar-rows":
        info = json.loads(side.read_text())
        info["rows"] += 3
        side.write_text(json.dumps(info))
        meta = json.loads((first.path / "metadata.json").read_text())
        meta["shards"][1]["rows"] += 3
        (first.path / "metadata.json").write_text(json.dumps(meta))
    else:
        (first.path / "metadata.json").write_text("{ torn")
    if damage == "shard":
        with pytest.raises(CorruptFileError, match="rerun the step"):
            first.pooled()
    with pytest.warns(UserWarning) if damage == "header" else contextlib.nullcontext():
        again = encode_store(store, sae, root=tmp_path / "latents", progress=False)
    np.testing.assert_array_equal(again.pooled()[0], want)
    assert json.loads(side.read_text())["rows"] == 20 and again.header["shards"][1]["rows"] == 20


def test_a_store_sidecar_with_edited_rows_is_recomputed(tmp_path):
    """Before: a store sidecar whose 'rows' was edited passed the checks (its checksum covers the shard, not the
    sidecar), and every rerun of extract failed on the manifest."""
    import json

    site = "text.layer.1.resid"
    first = run("tiny:bert", [site], tmp_path, pooling="none", shard_examples=2).stores[site]
    want = first.array()
    side = first.path / "shards" / "00001.json"
    info = json.loads(side.read_text())
    info["rows"] += 3
    side.write_text(json.dumps(info))
    again = run("tiny:bert", [site], tmp_path, pooling="none", shard_examples=2)
    assert again.computed_shards == 1
    np.testing.assert_array_equal(again.stores[site].array(), want)


@pytest.mark.parametrize("argv, message", [
    (["match", "--store-a", "a", "--store-b", "b", "--threshold", "nan"], "threshold = nan"),
    (["match", "--store-a", "a", "--store-b", "b", "--threshold", "2"], "threshold = 2.0"),
    (["match", "--store-a", "a", "--store-b", "b", "--threshold", "-1"], "threshold = -1.0"),
    (["analyze", "--stores", "a", "--n-perm", "100000000"], "n_perm = 100000000; use a whole number from 1 to"),
    (["train", "--store", "a", "--warmup-steps", "-1"], "warmup_steps = -1"),
    (["train", "--store", "a", "--dead-tokens", "-5"], "dead_tokens = -5"),
    (["match", "--store-a", "a", "--store-b", "b", "--sae-null", "s"], "1 sae_null for 0 store_null"),
    # found by the CLI fuzz's accepted values (below: each was accepted and the run went on to its inputs)
    (["fidelity", "--saes", "a", "--floor", "nan"], "floor = nan"),
    (["steer", "--sae", "a", "--concept", "dog", "--floor", "-1"], "floor = -1.0"),
    (["steer", "--sae", "a", "--concept", "dog", "--strengths", "0,nan"], "give finite non-negative"),
    (["steer", "--sae", "a", "--concept", "dog", "--strengths", "1e400"], "give finite non-negative"),
    (["train", "--store", "a", "--arch", "topk", "--l1", "5"], "drop it for TopK-style"),
    (["train", "--store", "a", "--arch", "relu", "--l1", "nan"], "l1 = nan"),
    (["analyze", "--stores", "a", "--n-boot", "99999999999"], "n_boot = 99999999999"),
    (["match", "--store-a", "a", "--store-b", "b", "--simulations", "99999999999"], "simulations = 99999999999"),
    (["steer", "--sae", "a", "--concept", "dog", "--n-random", "99999999999"], "n_random = 99999999999"),
    (["match", "--store-a", "a", "--store-b", "b", "--seed", "-1"], "seed = -1"),
])
def test_values_that_make_no_sense_are_usage_errors(capsys, argv, message):
    """Before: each was accepted (and recorded), or ran without a bound."""
    from mmfeatures.cli import main

    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_config_file_with_a_repeated_or_unreadable_key_is_a_usage_error(tmp_path, capsys):
    """Before: YAML with a key given twice took the last value; a binary file raised UnicodeDecodeError."""
    from mmfeatures.cli import main

    (tmp_path / "twice.yaml").write_text("width: 64\nk: 4\nwidth: 128\n")
    assert main(["train", "--store", "a", "--config", str(tmp_path / "twice.yaml")]) == 2
    assert "'width' is given twice" in capsys.readouterr().err
    (tmp_path / "binary.yaml").write_bytes(bytes(range(128, 256)))
    assert main(["train", "--store", "a", "--config", str(tmp_path / "binary.yaml")]) == 2
    assert "cannot be read as UTF-8" in capsys.readouterr().err


def test_train_config_values_out_of_range_are_refused():
    from mmfeatures.sae import TopK, TrainConfig

    for bad, message in [(dict(decay_start=1.5), "decay_start = 1.5"), (dict(decay_start=-0.1), "decay_start"),
                         (dict(lr=float("nan")), "lr = nan"), (dict(warmup_steps=-1), "warmup_steps = -1"),
                         (dict(dead_tokens=0), "dead_tokens = 0")]:
        with pytest.raises(InputError, match=message):
            TrainConfig(TopK(k=4), 64, **bad)
    with pytest.raises(InputError, match=r"is not an architecture; give one, e.g. TrainConfig\(make_arch\('topk'"):
        TrainConfig("topk", 64)


def test_write_store_refuses_an_empty_model_and_a_language_name(tmp_path):
    """Before: model='' wrote a store with no model folder, and language='english' was stored as a code."""
    from mmfeatures.activations import write_store

    rows = np.ones((2, 4), np.float32)
    examples = [{"id": "a", "language": "en"}, {"id": "b", "language": "es"}]
    with pytest.raises(InputError, match="model = ''"):
        write_store(rows, examples, model="", site="text.layer.0.resid", source="t", store_dir=tmp_path)
    with pytest.raises(InputError, match="a language.s name; give its code, .en."):
        write_store(rows, [examples[0], {"id": "b", "language": "english"}], model="m", site="text.layer.0.resid",
                    source="t", store_dir=tmp_path)
    store = write_store(rows, examples, model="m", site="text.layer.0.resid", source="t", store_dir=tmp_path)
    with pytest.raises(InputError, match="did you mean 'es'"):
        store.select(language="sp")
    assert list(store.select(language="es")) == [1]


def test_analyze_refuses_a_concept_or_subset_the_data_lacks(planted_dir):
    """Before: --concept nonexistent (documented as an error) drew no figure and said nothing; --subset seen-emoji on
    a text store was ignored but recorded."""
    from mmfeatures.pipeline import AnalyzeStep, run

    def step(**kw):
        return AnalyzeStep(stores=(planted_dir["scored"],), sae=planted_dir["sae"], n_perm=19, n_baseline=2,
                           n_boot=20, simulations=1, out=None, **kw)

    with pytest.raises(InputError, match="concept 'nonexistent' is not among"):
        run(step(concept="nonexistent"))
    with pytest.raises(InputError, match="subset 'seen-emoji' chooses among emoji pictures"):
        run(step(subset="seen-emoji"))


def test_raw_errors_are_named_errors(tmp_path):
    """Before: AttributeError (fidelity on an encoder-only SAE, train on a path string, sae.encode of numpy), a dtype
    RuntimeError (float64 rows), TypeError (a foreign result.json in report) and UnpicklingError (a pickled .pt)."""
    import json

    from mmfeatures.errors import CorruptFileError
    from mmfeatures.pipeline import FidelityStep
    from mmfeatures.pipeline import run as run_step
    from mmfeatures.pipeline.record import Record
    from mmfeatures.sae import SAE, EncoderOnlyError, TopK, TrainConfig, train
    from mmfeatures.sae.formats import load_tensors

    with pytest.raises(EncoderOnlyError, match="encoder-only"):
        run_step(FidelityStep(saes=("offline:e5-small/latent-terms",), out=None))
    with pytest.raises(FileNotFoundError, match="no activation store at"):
        train(str(tmp_path / "nowhere"), TrainConfig(TopK(k=2), 8))
    sae = SAE(4, 8, TopK(k=2))
    expected = sae.encode(torch.ones(3, 4))
    torch.testing.assert_close(sae.encode(np.ones((3, 4))), expected)
    torch.testing.assert_close(sae.encode(torch.ones(3, 4, dtype=torch.float64)), expected)
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "result.json").write_text(json.dumps({"kind": "mmfeatures-job", "schema_version": 2,
                                                              "job": "x", "title": "t", "config": {},
                                                              "artifacts": [{"x": 1}]}))
    with pytest.raises(CorruptFileError, match="not a result this mmfeatures can read"):
        Record.load(tmp_path / "job")

    torch.save({"w": torch.zeros(2), "obj": Payload()}, tmp_path / "foreign.pt")
    with pytest.raises(CorruptFileError, match="holds pickled Python objects .*Payload"):
        load_tensors(tmp_path / "foreign.pt", "foreign.pt")


def test_the_shuffle_buffer_is_bounded_in_bytes_for_long_documents(tmp_path):
    """Before: the buffer held 4 shards of 1,024 examples whatever their length, so with long documents training held
    the whole store. Now a buffer stops at its byte budget (one shard at least), and every row still comes once."""
    from mmfeatures.activations import write_store

    rng = np.random.default_rng(0)
    lengths = rng.integers(200, 2000, size=24)                     # rows (tokens) per document
    acts = rng.normal(size=(int(lengths.sum()), 16)).astype(np.float32)
    store = write_store(acts, [{"id": f"doc{i}"} for i in range(24)], model="planted", site="text.layer.0.resid",
                        source="long documents", pooling="none", example_index=np.repeat(np.arange(24), lengths),
                        store_dir=tmp_path, shard_examples=2)
    budget = 3 * 2000 * 16 * 4                                    # about three of the longest shards' worth
    groups = store._buffers(list(range(len(store.shards))), 4, budget)
    sizes = [sum(int(store.shards[i]["rows"]) for i in g) * 16 * 4 for g in groups]
    assert all(size <= budget or len(g) == 1 for size, g in zip(sizes, groups, strict=True))
    assert max(len(g) for g in groups) < 4 < len(store.shards)     # the byte budget, not the shard count, cut them
    rows = torch.cat(list(store.batches(64, seed=1, buffer_bytes=budget))).numpy()
    np.testing.assert_array_equal(np.sort(rows, axis=0), np.sort(acts, axis=0))


def test_a_damaged_store_header_is_repaired_by_the_ordinary_rerun(tmp_path):
    """Before: a torn metadata.json raised 'delete the folder' on every rerun; the folder is named by the store's key
    and every shard carries its own checksum, so the rerun rewrites the header and recomputes nothing intact."""
    site = "text.layer.1.resid"
    first = run("tiny:bert", [site], tmp_path, shard_examples=2).stores[site]
    want = first.array()
    (first.path / "metadata.json").write_text('{"kind": "activation-st')
    with pytest.warns(UserWarning, match="rewriting the header"):
        again = run("tiny:bert", [site], tmp_path, shard_examples=2)
    assert again.computed_shards == 0
    np.testing.assert_array_equal(again.stores[site].array(), want)


REPAIRS = re.compile(r"delete|rerun|re-run|rebuild|reinstall|retrain|train it again|run `|fetch|pip install|git checkout|"
                     r"restore|save the SAE again|save the weights|fold the|fix '|set it|give true|pass on_", re.I)
REPAIR_NAMES = {"fix", "RERUN", "REINSTALL", "RESAVE"}      # module constants and arguments that carry a repair


def test_every_corrupt_file_error_names_its_repair():
    """Each CorruptFileError the package raises names the command or deletion that repairs it, in its own words or
    through a variable that carries one (``fix``, ``RERUN``, ...). Before: 32 of 80 named none (a truncated e5 header,
    a foreign SAE's missing tensor, a FreeDict package without its index)."""
    import ast
    from pathlib import Path

    bare = []
    for path in sorted(Path(mmf.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "CorruptFileError"):
                continue
            words = [n.value for a in node.args for n in ast.walk(a) if isinstance(n, ast.Constant)
                     and isinstance(n.value, str)]
            names = {n.id for a in node.args for n in ast.walk(a) if isinstance(n, ast.Name)}
            if not (REPAIRS.search(" ".join(words)) or names & REPAIR_NAMES):
                bare.append(f"{path.name}:{node.lineno}: {' '.join(words)[:120]}")
    assert not bare, "\n".join(bare)


def test_a_width_beyond_memory_is_refused_before_allocating(tmp_path):
    """Found by the CLI fuzz: `train --width 99999999999` passed every check and went on to allocate the SAE."""
    from mmfeatures.activations import write_store
    from mmfeatures.sae import TopK, TrainConfig

    rows = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    store = write_store(rows, [{"id": f"r{i}"} for i in range(64)], model="planted", site="text.layer.0.resid",
                        source="random rows", store_dir=tmp_path)
    with pytest.raises(InputError, match=r"width\(s\) \[99999999999\] on d = 8 need .* GiB .* lower the width"):
        mmf.train(store, TrainConfig(TopK(k=4), 99999999999, batch_size=16), tmp_path / "saes", progress=False)
