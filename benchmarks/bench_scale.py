"""Research scale, end to end: two synthetic token stores, a 16,384-latent TopK SAE for each, then encode ->
cross-lingual scores with permutations -> match with its null. Prints peak RSS (goal <= 4 GiB for the whole run)
and the time against a floor measured in the same run: one read of both stores plus one encoder GEMM pass over
their rows (goal: floor / total >= 0.5). Names the device.

    .venv/bin/python benchmarks/bench_scale.py                         # 1,000,000 rows per store (about 9 min on 2 cores)
    .venv/bin/python benchmarks/bench_scale.py --rows 100000 --latents 4096     # a smaller run

The stores (rows x 384, fp32, labelled with 500 concepts x 20 languages = 10,000 examples) are written once into
--dir with mmfeatures.write_store and reused. The SAEs are random-init TopK (k = 32): a throughput benchmark, not
a scientific claim. The workload is what the issue names: every row encoded once (sae.encode_store), pooled per
example from the latent set, cross-lingual scores with --n-perm permutations, and each A latent's --m best B
latents (best_partners) with --n-match-perm row permutations (permuted_rows_null). The latent sets are encoded
afresh on every run (the step is measured); the stores (3 GB at full size) are kept.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import device_line  # noqa: E402

D, CONCEPTS, LANGUAGES = 384, 500, 20


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synthetic_store(rows: int, seed: int, folder: Path):
    """A token store of ``rows`` rows over 10,000 examples: each row is its concept's direction plus its language's
    plus noise, so concept-selective and language-selective structure exist to be found."""
    import mmfeatures as mmf

    n_examples = CONCEPTS * LANGUAGES
    per = rows // n_examples
    rng = np.random.default_rng(seed)
    concept_dirs = rng.normal(size=(CONCEPTS, D)).astype(np.float32)
    language_dirs = rng.normal(size=(LANGUAGES, D)).astype(np.float32)
    examples = [{"id": f"c{c}/l{lang}", "concept": f"c{c}", "language": f"l{lang}"}
                for c in range(CONCEPTS) for lang in range(LANGUAGES)]

    def per_example():
        for e in range(n_examples):
            c, lang = divmod(e, LANGUAGES)
            noise = rng.normal(size=(per, D)).astype(np.float32)
            yield concept_dirs[c] + 0.5 * language_dirs[lang] + noise

    return mmf.write_store(per_example(), examples, model=f"synthetic-{seed}", site="text.layer.6.resid",
                           source=f"bench_scale seed {seed}, {rows} rows", pooling="none", store_dir=folder,
                           shard_examples=500)


def floor_seconds(stores, saes) -> float:
    """One read of both stores plus one encoder GEMM (rows x d_in x d_sae) over their rows, batch by batch, into
    one reused output (as encode_store does: a fresh output per batch costs a third more in page faults)."""
    start = time.perf_counter()
    with torch.no_grad():
        for store, sae in zip(stores, saes, strict=True):
            w = sae.W_enc.detach()
            out = torch.empty(4096, w.shape[1])
            for _, shard in store.iter_shards():
                x = shard["acts"]
                for s in range(0, len(x), 4096):
                    torch.matmul(x[s:s + 4096].float(), w, out=out[:len(x[s:s + 4096])])
    return time.perf_counter() - start


def main() -> None:
    import mmfeatures as mmf
    from mmfeatures.analysis import best_partners, crosslingual, permuted_rows_null, unit_activations
    from mmfeatures.sae import encode_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--latents", type=int, default=16_384)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--n-perm", type=int, default=19)
    parser.add_argument("--n-match-perm", type=int, default=5)
    parser.add_argument("--m", type=int, default=8, help="partners kept per A unit")
    parser.add_argument("--dir", default="/tmp/mmfeatures-bench-scale")
    args = parser.parse_args()
    folder = Path(args.dir)
    print(device_line(torch.device("cpu")))
    t = time.perf_counter()
    stores = [synthetic_store(args.rows, seed, folder / "stores") for seed in (0, 1)]
    print(f"stores: 2 x {stores[0].n_rows:,} rows x {stores[0].d} ({time.perf_counter() - t:.0f} s to write or find)")
    saes = []
    for seed, store in enumerate(stores):
        sae = mmf.SAE(D, args.latents, mmf.TopK(k=args.k), seed=seed)
        sae.metadata = {"model_name": store.config.model, "hook_name": store.config.site}
        saes.append(sae)
    shutil.rmtree(folder / "latents", ignore_errors=True)          # every run encodes: the step is measured
    floor = floor_seconds(stores, saes)
    print(f"floor (one read of both stores + one encoder GEMM pass): {floor:.1f} s")
    steps: dict[str, float] = {}
    peaks: dict[str, float] = {"before the workload": peak_rss_gib()}
    start = time.perf_counter()
    t = time.perf_counter()
    latents = [encode_store(s, sae, root=folder / "latents", progress=True) for s, sae in zip(stores, saes, strict=True)]
    steps["encode (both stores, once)"] = time.perf_counter() - t
    peaks["encode (both stores, once)"] = peak_rss_gib()
    t = time.perf_counter()
    pooled = [unit_activations(s, sae, latents=lat) for s, sae, lat in zip(stores, saes, latents, strict=True)]
    steps["pool per example (from the latent sets)"] = time.perf_counter() - t
    peaks["pool per example (from the latent sets)"] = peak_rss_gib()
    t = time.perf_counter()
    cl = crosslingual(*pooled[0], n_perm=args.n_perm)
    steps[f"cross-lingual scores, {args.n_perm} permutations"] = time.perf_counter() - t
    peaks[f"cross-lingual scores, {args.n_perm} permutations"] = peak_rss_gib()
    t = time.perf_counter()
    za, zb = pooled[0][0], pooled[1][0]
    partners = best_partners(za, zb, args.m)
    best = partners.values[partners.alive_a, 0]
    null = permuted_rows_null(za, zb, n_perm=args.n_match_perm, statistic=np.median)
    steps[f"match A against B ({partners.method}, top {args.m}), {args.n_match_perm} row permutations"] = time.perf_counter() - t
    total = time.perf_counter() - start
    peaks[list(steps)[-1]] = peak_rss_gib()
    print(f"  peak RSS before the workload (imports, stores written, floor): {peaks['before the workload']:.2f} GiB")
    for name, seconds in steps.items():
        print(f"  {name}: {seconds:.1f} s (peak RSS so far {peaks[name]:.2f} GiB)")
    print(f"multilingual fraction {cl.scores['multilingual'].value:.3f}; median best r {np.median(best):.3f} "
          f"(null {np.mean(null):.3f})")
    print(f"latent sets: {sum(lat.header['nnz'] for lat in latents):,} entries on disk")
    print(f"total {total:.1f} s; floor / total = {floor / total:.2f} (goal >= 0.5)")
    print(f"peak RSS {peak_rss_gib():.2f} GiB (goal <= 4)")


if __name__ == "__main__":
    main()
