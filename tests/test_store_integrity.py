"""A store read back is the store that was written: checksums on first read, damaged files named with the fix."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mmfeatures.activations import ActivationStore, extract
from mmfeatures.disk import forget_checks
from mmfeatures.errors import ArtifactConflictError, CorruptFileError

TEXTS = ["a dog", "the cat sat on the mat", "hello world", "x y z", "birds fly south in winter"] * 4
SITE = "text.layer.1.resid"


def make(tmp_path, **kw):
    kw.setdefault("pooling", "none")
    return extract("tiny:bert", TEXTS, [SITE], store_dir=tmp_path, shard_examples=5, progress=False, **kw)


def flip(path, offset=-3):
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0x40
    path.write_bytes(bytes(blob))


@pytest.fixture
def store(tmp_path):
    forget_checks()                    # each test starts as a fresh process would
    return make(tmp_path).stores[SITE]


def test_a_flipped_byte_in_a_shard_is_refused_then_recomputed(store, tmp_path):
    clean = store.array()
    flip(store.path / "shards" / "00001.safetensors")
    with pytest.raises(CorruptFileError, match=r"00001.safetensors fails its checksum.*rerun the same extract"):
        ActivationStore(store.path).array()
    again = make(tmp_path)                                            # the fix the message names
    assert again.computed_shards == 1 and again.reused_shards == 3
    np.testing.assert_array_equal(ActivationStore(store.path).array(), clean)


def test_stats_are_checked_and_recomputed_when_a_shard_is(store, tmp_path):
    before = store.stats()
    flip(store.path / "stats.safetensors", offset=-2)
    with pytest.raises(CorruptFileError, match=r"stats.safetensors fails its checksum.*recomputed on next use"):
        ActivationStore(store.path).stats()
    (store.path / "stats.safetensors").unlink()
    assert ActivationStore(store.path).stats().mean_sq_norm == pytest.approx(before.mean_sq_norm)
    (store.path / "shards" / "00002.json").unlink()                   # shard 2 is recomputed by the next run
    make(tmp_path)
    fresh = ActivationStore(store.path)
    fresh.stats()
    sums = [s["checksum"] for s in fresh.shards]
    assert json.loads((store.path / "stats.json").read_text())["shards"] == sums   # stats follow the shards


def edit_header(store, change):
    path = store.path / "metadata.json"
    header = json.loads(path.read_text())
    change(header)
    path.write_text(json.dumps(header))


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_text(p.read_text()[:40]), r"metadata.json is damaged \(not valid JSON"),
    ("no-shards", r"metadata.json has no valid 'shards' manifest"),
    ("rows", r"says n_rows = 999 but its shards hold \d+ rows"),
    ("config", r"records key .* but its config hashes to"),
])
def test_a_damaged_manifest_names_the_file_and_the_fix(store, damage, message):
    if damage == "no-shards":
        edit_header(store, lambda h: h.pop("shards"))
    elif damage == "rows":
        edit_header(store, lambda h: h.update(n_rows=999))
    elif damage == "config":
        edit_header(store, lambda h: h["config"].update(role="passage"))
    else:
        damage(store.path / "metadata.json")
    with pytest.raises(CorruptFileError, match=message + r".*(delete|rerun)"):
        ActivationStore(store.path)


def test_sidecar_rows_that_disagree_with_the_shard_are_refused(store):
    def shrink(h):
        h["shards"][0]["rows"] -= 1
        h["n_rows"] -= 1
    edit_header(store, shrink)
    with pytest.raises(CorruptFileError, match=r"00000.safetensors holds acts of shape \(\d+, 32\) but the manifest"):
        ActivationStore(store.path).array()


def test_truncated_examples_and_tokens_are_named(store):
    examples = store.path / "examples.jsonl"
    examples.write_text(examples.read_text()[:-30])
    with pytest.raises(CorruptFileError, match="examples.jsonl fails its checksum"):
        _ = ActivationStore(store.path).examples
    tokens = store.path / "shards" / "00000.tokens.json"
    tokens.write_text(tokens.read_text()[:-10])
    with pytest.raises(CorruptFileError, match="00000.tokens.json fails its checksum"):
        ActivationStore(store.path).provenance()


def test_a_damaged_safetensors_header_is_a_corrupt_file_not_a_raw_error(store):
    shard = store.path / "shards" / "00003.safetensors"
    shard.write_bytes(b"\xff" * 8 + shard.read_bytes()[8:])
    side = store.path / "shards" / "00003.json"
    info = json.loads(side.read_text())
    from mmfeatures.disk import FAST, file_checksum

    # the bytes changed but so did the record (as a careless copy tool might): the parser still fails cleanly
    info["checksum"] = file_checksum(shard, FAST)
    side.write_text(json.dumps(info))
    edit_header(store, lambda h: h["shards"][3].update(checksum=info["checksum"]))
    with pytest.raises(CorruptFileError, match=r"00003.safetensors cannot be read"):
        ActivationStore(store.path).array()


def test_shards_are_checked_with_xxh3_and_stores_recorded_with_sha256_still_verify(store):
    from mmfeatures.disk import file_sha256, forget_checks

    assert all(s["checksum"].startswith("xxh3-128:") for s in store.shards)
    want = store.array()

    def legacy(h):                                   # the manifest a store written before the switch holds
        for i, s in enumerate(h["shards"]):
            del s["checksum"], s["tokens_checksum"]
            s["sha256"] = file_sha256(store.path / "shards" / f"{i:05d}.safetensors")
    edit_header(store, legacy)
    forget_checks()
    np.testing.assert_array_equal(ActivationStore(store.path).array(), want)
    flip(store.path / "shards" / "00001.safetensors", offset=-3)
    forget_checks()
    with pytest.raises(CorruptFileError, match=r"00001.safetensors fails its checksum \(sha256"):
        ActivationStore(store.path).array()


def test_leftover_temporaries_of_a_killed_run_are_cleaned(store, tmp_path):
    dead = 2 ** 22 + 12345                                            # above any pid this machine hands out
    junk = [store.path / "shards" / f".00001.safetensors.tmp-{dead}", store.path / f".metadata.json.tmp-{dead}"]
    for path in junk:
        path.write_bytes(b"half a shard")
    mine = store.path / "shards" / f".00002.safetensors.tmp-{os.getpid()}"
    mine.write_bytes(b"being written")
    make(tmp_path)
    assert not any(p.exists() for p in junk) and mine.exists()


def test_a_store_folder_of_another_config_is_an_error_naming_both(store, tmp_path):
    """Two configs never share a folder; if one is forced into another's folder, extract says so."""
    header = json.loads((store.path / "metadata.json").read_text())
    header["key"] = "0" * 16
    (store.path / "metadata.json").write_text(json.dumps(header))
    with pytest.raises(ArtifactConflictError, match=r"already holds another activation store \(key '0000"):
        make(tmp_path)


def test_none_sites_inputs_and_zero_batches_name_the_fix(store, tmp_path):
    from mmfeatures.errors import InputError

    with pytest.raises(InputError, match=r"no sites given \(sites=None\)"):
        extract("tiny:bert", TEXTS, None, store_dir=tmp_path, progress=False)
    with pytest.raises(InputError, match="inputs is None"):
        extract("tiny:bert", None, [SITE], store_dir=tmp_path, progress=False)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match=f"batch_size = {bad!r}; give a whole number"):
            store.batches(bad)
