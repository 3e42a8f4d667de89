"""SAE training: ours ÷ SAELens TopK, on the same real activations, same k, batch, lr and tokens.

Activations: offline:e5-small, text.layer.6.resid, per token, on English docstrings of the Python
standard library and numpy (real text that every machine here has), scaled to mean squared norm d_in.
Reports (issue 4): training tokens/s ratio (goal >= 4x on CPU), eval NMSE ratio at equal k and
tokens (goal <= 1.0), dead fraction with AuxK + tied init vs without, and the roofline: one bare
encoder GEMM of the same shape ÷ our step time (goal >= 0.6).

    python benchmarks/bench_sae.py [--steps 25] [--batch 4096] [--d-sae 16384] [--k 32] [--lrs 1e-3,3e-3,1e-2]

SAELens' TopK keeps decoder rows at norm 0.1 at init and rescales by decoder norm, so one nominal
learning rate means different effective step sizes in the two libraries; the sweep compares each
at its best learning rate as well as at equal ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_line  # noqa: E402

import mmfeatures as mmf  # noqa: E402
from mmfeatures.sae import SAE, TopK, TrainConfig, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def stdlib_docstrings(max_chars: int = 400) -> list[str]:
    """Paragraphs of docstrings from fixed standard-library and numpy modules, in a stable order."""
    import importlib
    import inspect

    texts = []
    for name in ["argparse", "collections", "csv", "datetime", "decimal", "email.message", "fractions", "ftplib",
                 "http.client", "json", "logging", "os", "pathlib", "re", "shutil", "smtplib", "socket", "statistics",
                 "string", "subprocess", "tarfile", "textwrap", "threading", "typing", "unittest", "urllib.parse",
                 "uuid", "xml.dom.minidom", "zipfile", "asyncio.tasks", "calendar", "difflib", "heapq", "sqlite3",
                 "numpy", "numpy.linalg", "numpy.random", "numpy.fft", "numpy.ma", "numpy.polynomial"]:
        module = importlib.import_module(name)
        for _, obj in sorted(inspect.getmembers(module), key=lambda kv: kv[0]):
            doc = inspect.getdoc(obj) if callable(obj) else None
            for para in (doc or "").split("\n\n"):
                para = " ".join(para.split())
                if len(para) > 40 and not para.startswith((">>>", "..")):
                    texts.append(para[:max_chars])
    return list(dict.fromkeys(texts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--d-sae", type=int, default=16_384)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--lrs", default="1e-3,3e-3,1e-2",
                   help="learning rates to sweep for both libraries (the first one also runs the ablations)")
    p.add_argument("--saelens-python", default=str(ROOT / ".venv-saelens" / "bin" / "python"))
    args = p.parse_args()
    torch.manual_seed(0)
    need = args.steps * args.batch
    texts = stdlib_docstrings()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sae-"))
    enc = mmf.load_encoder("offline:e5-small")
    site = "text.layer.6.resid"
    # ~4 characters per token in these docstrings: extract what the run needs, with a margin
    eval_texts, train_texts = texts[:150], texts[150:]
    budget, chars = 4 * need, 0
    for cut, text in enumerate(train_texts):
        chars += len(text)
        if chars > budget:
            train_texts = train_texts[: cut + 1]
            break
    t = time.perf_counter()
    train_store = mmf.extract(enc, train_texts, [site], pooling="none", store_dir=tmp, progress=False).stores[site]
    eval_store = mmf.extract(enc, eval_texts, [site], pooling="none", store_dir=tmp, progress=False).stores[site]
    print(f"activations: {train_store.n_rows} train / {eval_store.n_rows} eval tokens of stdlib docstrings, "
          f"offline:e5-small {site} ({time.perf_counter() - t:.0f} s to extract)")
    if train_store.n_rows < need:
        raise SystemExit(f"only {train_store.n_rows} tokens for {need} needed; lower --steps or --batch")
    scale = train_store.input_scale()
    train_x = torch.cat(list(train_store.batches(need, shuffle=True, seed=0, drop_last=True)))[:need] * scale
    eval_x = torch.from_numpy(eval_store.array()) * scale
    np.save(tmp / "train.npy", train_x.numpy())
    np.save(tmp / "eval.npy", eval_x.numpy())

    lrs = [float(v) for v in args.lrs.split(",")]
    common = dict(batch_size=args.batch, total_rows=need, lr=lrs[0], warmup_steps=1, decay_start=1.0,
                  log_every=max(args.steps, 1), checkpoint_every=10**9, normalize="scale", device="cpu",
                  dead_tokens=5 * args.batch)
    runs = {"ours (AuxK, tied, b_dec=GM)": TrainConfig(TopK(k=args.k), args.d_sae, **common, name="auxk-tied"),
            "ours (AuxK, tied, b_dec=0)": TrainConfig(TopK(k=args.k), args.d_sae, b_dec_init="zeros", **common,
                                                      name="auxk-tied-zero"),
            "ours (no AuxK, untied)": TrainConfig(TopK(k=args.k, aux_coefficient=0), args.d_sae, tied_init=False,
                                                   **common, name="plain")}
    for lr in lrs[1:]:
        runs[f"ours (AuxK, tied, b_dec=GM) lr {lr:g}"] = dataclasses.replace(
            runs["ours (AuxK, tied, b_dec=GM)"], lr=lr, name=f"auxk-tied-{lr:g}")
    results = {}
    for label, cfg in runs.items():
        t = time.perf_counter()
        trained = train(train_store, cfg, tmp / "saes", progress=False)[0]
        seconds = time.perf_counter() - t
        sae, metrics = trained.sae, trained.metrics["final"]
        with torch.no_grad():
            raw = eval_x / scale
            recon = sae.decode(sae.encode(raw))
            nmse = float((recon - raw).pow(2).sum() / (raw - raw.mean(0)).pow(2).sum())
        results[label] = {"tokens_per_s": need / seconds, "eval_nmse": nmse, "dead": metrics["dead_fraction"],
                          "lr": cfg.lr}

    x = train_x[: args.batch]
    w = torch.randn(x.shape[1], args.d_sae)
    gemm = min(_timed(lambda: x @ w) for _ in range(3))
    sae = SAE(x.shape[1], args.d_sae, TopK(k=args.k))
    opt = torch.optim.Adam(sae.parameters(), lr=lrs[0])
    dead = torch.zeros(args.d_sae, dtype=torch.bool)

    def step():
        out = sae(x, dead)
        opt.zero_grad()
        out.loss.backward()
        sae.project_decoder_grad()
        opt.step()
        sae.normalise_decoder()

    step()
    ours_step = min(_timed(step) for _ in range(3))

    saelens = {}
    for lr in lrs:
        sl = subprocess.run([args.saelens_python, str(Path(__file__).with_name("saelens_train.py")),
                             str(tmp / "train.npy"), str(tmp / "eval.npy"), str(args.k), str(args.d_sae),
                             str(args.batch), str(args.steps), str(lr)], check=True, capture_output=True, text=True)
        saelens[lr] = json.loads(sl.stdout.strip().splitlines()[-1])
    ours = results["ours (AuxK, tied, b_dec=GM)"]
    zero = results["ours (AuxK, tied, b_dec=0)"]
    print(device_line(torch.device("cpu")), f"| d_in {x.shape[1]}, d_sae {args.d_sae}, k {args.k}, batch {args.batch}, "
          f"{args.steps} steps ({need} tokens), same rows for every run")
    for label, r in results.items():
        print(f"{label:40s} lr {r['lr']:<7g} {r['tokens_per_s']:6.0f} tokens/s  eval NMSE {r['eval_nmse']:.4f}  "
              f"dead {r['dead']:.3f}")
    for lr, r in saelens.items():
        print(f"{'SAELens 6.54 TopK':40s} lr {lr:<7g} {r['tokens_per_s']:6.0f} tokens/s  eval NMSE {r['eval_nmse']:.4f}")
    sl0 = saelens[lrs[0]]
    print(f"throughput ours/SAELens = {ours['tokens_per_s'] / sl0['tokens_per_s']:.1f}x  (goal >= 4x)")
    print(f"quality NMSE ours/SAELens at lr {lrs[0]:g}: {ours['eval_nmse'] / sl0['eval_nmse']:.3f} with Gao's b_dec "
          f"init, {zero['eval_nmse'] / sl0['eval_nmse']:.3f} with b_dec=0 as SAELens  (goal <= 1.0)")
    ours_lr = {r["lr"]: r["eval_nmse"] for label, r in results.items() if label.startswith("ours (AuxK, tied, b_dec=GM)")}
    for lr in lrs:
        print(f"  at lr {lr:g}: ours/SAELens = {ours_lr[lr] / saelens[lr]['eval_nmse']:.3f}")
    best_ours, best_sl = min(ours_lr.values()), min(r["eval_nmse"] for r in saelens.values())
    print(f"quality at each library's best lr of the sweep: ours/SAELens = {best_ours / best_sl:.3f}  (goal <= 1.0)")
    print(f"roofline: bare encoder GEMM {gemm * 1e3:.0f} ms / our step {ours_step * 1e3:.0f} ms = {gemm / ours_step:.2f}"
          "  (goal >= 0.6)")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
