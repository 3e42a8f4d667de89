"""Issue 32, item 10: shards bounded in bytes, so memory does not follow document length. Before, a shard was 1,024
examples whatever their length (extract() and write_store() took no byte bound: both tests failed)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mmfeatures.activations import extract

SITE = "text.layer.1.resid"
LONG = [" ".join(f"word{i * 7 + j} the cat sat" for j in range(60 + 25 * i)) for i in range(12)]


def test_extract_cuts_long_documents_into_shards_of_bounded_bytes(tmp_path):
    """Per-token rows are counted before any shard runs; every shard of more than one document stays within the
    byte bound, and the rows equal those of one big shard (batch size 1: the same forward passes)."""
    budget = 16 << 10                                  # two documents of 62 tokens (tiny:bert cuts at 64)
    small = extract("tiny:bert", LONG, [SITE], pooling="none", store_dir=tmp_path, shard_bytes=budget, batch_size=1,
                    progress=False).stores[SITE]
    whole = extract("tiny:bert", LONG, [SITE], pooling="none", store_dir=tmp_path, batch_size=1,
                    progress=False).stores[SITE]
    assert whole.config.n_shards == 1 < small.config.n_shards
    for info in small.shards:
        start, stop = info["examples"]
        assert info["rows"] * info["d"] * 4 <= budget or stop - start == 1, info
    np.testing.assert_array_equal(small.array(), whole.array())
    assert small.config.key != whole.config.key


def test_a_pooled_store_keeps_shards_of_examples():
    """Pooled rows are one per example: the byte bound cuts nothing at ordinary widths."""
    from mmfeatures.activations.layout import plan_shards

    assert plan_shards([1] * 2500, 384 * 4) == (0, 1024, 2048)
    assert plan_shards([512] * 300, 384 * 4) == tuple(range(0, 300, 85))       # 85 documents of 512 tokens: 64 MiB
    assert plan_shards([], 4) == ()
    with pytest.raises(ValueError, match="shard_bytes"):
        plan_shards([1], 4, max_bytes=0)


CHILD = r"""
import json, resource, sys
import numpy as np, torch
from mmfeatures.activations import write_store
from mmfeatures.disk import release_freed_memory
from mmfeatures.sae import SAE, TopK

root, shard_bytes = sys.argv[1], int(sys.argv[2])
n_docs, rows, d = 96, 8000, 64                           # 197 MB of float32 rows, 8,000 tokens per document

def docs():
    for i in range(n_docs):
        yield np.random.default_rng(i).normal(size=(rows, d)).astype(np.float32)

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() >> 20

def peak():                      # VmHWM: this program's own peak (ru_maxrss keeps the forking parent's across exec)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) >> 10

sae = SAE(d, 256, TopK(k=8))
next(docs()); torch.randn(1000, d) @ torch.randn(d, 256)   # warm the allocators before the baseline
release_freed_memory()
base = rss()
start = peak()
store = write_store(docs(), [{"id": f"doc{i}"} for i in range(n_docs)], model="planted", site="text.layer.0.resid",
                    source="long documents", pooling="none", store_dir=root, shard_bytes=shard_bytes)
out = {"shards": len(store.shards), "write": peak() - base}
release_freed_memory()
n = sum(len(b) for b in store.batches(4096, seed=0, buffer_bytes=shard_bytes))
out["read"] = peak() - base
from mmfeatures.sae.latents import encode_store
encode_store(store, sae, root=root, progress=False)
out["encode"] = peak() - base
out["rows"], out["start"] = n, start - base
print(json.dumps(out))
"""


def _child(tmp_path, shard_bytes: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(shard_bytes)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_writing_reading_and_encoding_long_documents_stay_within_memory(tmp_path):
    """188 MiB of rows in 96 long documents, written, read for training and encoded by an SAE, with 4 MiB shards:
    the peak grows by a bounded multiple of the shard size, about a third of the store's size, at each step
    (measured in a fresh process, resident set; 65 MiB for reading and encoding, the same with half the documents;
    before, one shard held the whole store and writing alone took 207 MiB for half of it)."""
    got = _child(tmp_path / "small", 4 << 20)
    assert got["rows"] == 96 * 8000 and got["shards"] >= 48
    assert got["start"] < 30, got                     # the baseline is (nearly) the peak so far, so growth shows
    for step in ("write", "read", "encode"):
        assert got[step] < 100, (step, got)         # MiB over the baseline; the store is 188 MiB, one shard 4
