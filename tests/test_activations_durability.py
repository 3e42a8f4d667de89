"""Nothing lost on a crash, and torchrun ranks merge into the single-process store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from mmfeatures.activations import ActivationStore, extract

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [f"Sentence number {i} about {w}." for i in range(60) for w in ["dogs"]]
SITE = "text.layer.6.resid"


def _extract_script(store_dir: Path) -> str:
    return textwrap.dedent(f"""
        import os
        os.environ["HF_HUB_OFFLINE"] = "1"
        from mmfeatures.activations import extract
        texts = {TEXTS!r}
        extract("offline:e5-small", texts, [{SITE!r}], store_dir={str(store_dir)!r}, shard_examples=2,
                batch_size=2, progress=False, device="cpu")
    """)


def test_sigkill_halfway_then_resume_recomputes_only_missing_shards(tmp_path, e5):
    store_dir = tmp_path / "stores"
    proc = subprocess.Popen([sys.executable, "-c", _extract_script(store_dir)], cwd=ROOT)
    try:
        while True:  # wait until a few shards are durable, then kill without warning
            done = list(store_dir.glob("**/shards/*.json"))
            if len(done) >= 5 or proc.poll() is not None:
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    meta = json.loads(next(store_dir.glob("**/metadata.json")).read_text())
    assert meta["status"] == "partial", "the run finished before it was killed; the test proved nothing"
    before = {p.name: p.stat().st_mtime_ns for p in store_dir.glob("**/shards/*.json")}
    assert 0 < len(before) < 30

    resumed = extract(e5, TEXTS, [SITE], store_dir=store_dir, shard_examples=2, batch_size=2, progress=False)
    assert resumed.reused_shards == len(before) and resumed.computed_shards == 30 - len(before)
    after = {p.name: p.stat().st_mtime_ns for p in store_dir.glob("**/shards/*.json")}
    assert all(after[n] == t for n, t in before.items()), "a complete shard was recomputed"

    clean = extract(e5, TEXTS, [SITE], store_dir=tmp_path / "clean", shard_examples=2, batch_size=2, progress=False)
    pr, pc = resumed.provenance(SITE), clean.provenance(SITE)
    assert np.array_equal(pr.example_index, pc.example_index) and pr.token == pc.token  # no dup, no gap
    np.testing.assert_allclose(resumed[SITE], clean[SITE], rtol=0, atol=1e-5)


DIST_SCRIPT = """
import os, sys
import torch.distributed as dist
os.environ["HF_HUB_OFFLINE"] = "1"
dist.init_process_group("gloo")
from mmfeatures.activations import extract
texts = [f"text {i} " + "word " * (i % 7) for i in range(23)]
extract("tiny:bert", texts, ["text.layer.1.resid", "text.embed"], pooling="none", store_dir=sys.argv[1],
        shard_examples=3, batch_size=2, progress=False, device="cpu")
dist.destroy_process_group()
"""


def test_two_gloo_ranks_merge_into_the_single_process_store(tmp_path):
    script = tmp_path / "dist_extract.py"
    script.write_text(DIST_SCRIPT)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(script), str(tmp_path / "multi")], cwd=ROOT, check=True, capture_output=True, text=True)
    texts = [f"text {i} " + "word " * (i % 7) for i in range(23)]
    single = extract("tiny:bert", texts, ["text.layer.1.resid", "text.embed"], pooling="none",
                     store_dir=tmp_path / "single", shard_examples=3, batch_size=2, progress=False, device="cpu")
    for store in single.stores.values():
        merged = ActivationStore(tmp_path / "multi" / store.path.relative_to(tmp_path / "single"))
        assert merged.header["status"] == "complete" and merged.n_rows == store.n_rows
        # torchrun gives each rank one OpenMP thread, so float sums may differ in the last bit.
        np.testing.assert_allclose(merged.array(), store.array(), rtol=0, atol=1e-6)
        pm, ps = merged.provenance(), store.provenance()
        assert np.array_equal(pm.example_index, ps.example_index) and pm.token == ps.token


def test_a_slow_disk_holds_the_model_back_instead_of_queueing_shards(tmp_path, monkeypatch):
    """Back-pressure: with writes far slower than the model, at most two shards per site are held in memory
    (the one being written and the one just computed), not every shard waiting for the disk."""
    import importlib
    import threading

    from mmfeatures.activations.writer import StoreWriter

    extract_module = importlib.import_module("mmfeatures.activations.extract")    # the module, not the function

    held, most, lock = [0], [0], threading.Lock()
    compute, write = extract_module._ShardRunner.compute, StoreWriter.write_shard

    def computed(self, prep, io):
        with lock:
            held[0] += 1
            most[0] = max(most[0], held[0])
        return compute(self, prep, io)

    def slow_write(self, *args, **kwargs):
        time.sleep(0.3)
        with lock:
            held[0] -= 1
        return write(self, *args, **kwargs)

    monkeypatch.setattr(extract_module._ShardRunner, "compute", computed)
    monkeypatch.setattr(StoreWriter, "write_shard", slow_write)
    texts = [f"sentence number {i}" for i in range(24)]
    result = extract("tiny:bert", texts, ["text.layer.1.resid"], store_dir=tmp_path, shard_examples=2, batch_size=2,
                     progress=False, device="cpu")
    assert result.computed_shards == 12 and held[0] == 0
    assert most[0] <= 2, most[0]                   # 12 shards, each computed far faster than written
