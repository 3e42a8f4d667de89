"""Rebuild the SAEs shipped in data/saes (`make saes`; resumable: every step is a keyed pipeline step).

They are trained on a general-domain multilingual corpus from Debian's archive (mmfeatures/datasets/general.py:
fortune cookies, the usage examples of FreeDict's English-German dictionary, half of Tux Paint's stamp captions and a
slice of LibreOffice's help), de-duplicated by text and split 90/10 by text, never on the texts they are scored on:
- e5-small layer 8, three seeds at width 1,536 (the demo's) and one at 16,384 (into the cache only: 50 MB);
- MiniLM-L6 layer 4, three seeds, and three random-init copies of MiniLM with an SAE each (the baseline a real
  cross-model match must beat), on the corpus's English texts;
- e5-small's random-init copy, layer 8, on the same corpus (the random-init baseline of the cross-lingual halves).
Each is then scored on held-out text of its training domain and on the evaluation sets (the built-in concept
sentences, the FreeDict words), and the card gives the domain-match ratio: NMSE on the concept sentences over NMSE
on held-out training-domain text (aim <= 1.25). The numbers go into data/saes/README.md and card.json.

    python scripts/build_saes.py [--device cuda] [--out reports/saes]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from mmfeatures.datasets.builtin import data_root
from mmfeatures.disk import write_text_atomic
from mmfeatures.pipeline import ExtractStep, PlanStep, StoreOf, TrainStep, run, run_plan
from mmfeatures.sae import load_sae
from mmfeatures.sae.evaluate import evaluate_sae

E5, MINILM = "offline:e5-small", "offline:minilm-l6"
E5_SITE, MINILM_SITE = "text.layer.8.resid", "text.layer.4.resid"
DATA = "general:2000"               # per source and language (times the source's share: general.SHARE)
HELDOUT = "general-heldout:300"     # held-out text of the training domain, for the domain-match ratio
E5_SEEDS, MINILM_SEEDS, COPIES = (0, 1, 2), (1, 2, 3), (0, 1, 2)
WIDTH, WIDE, K = 1536, 16384, 16
EVAL_ROWS = 200_000
AIM = 1.25


def plan(device: str) -> tuple[PlanStep, ...]:
    def extract(model, site, data, languages=()):
        return ExtractStep(model=model, sites=(site,), data=data, languages=languages, device=device)

    def fit(step, site, seed, epochs, width=WIDTH):
        return TrainStep(store=StoreOf(step, site), width=width, k=K, epochs=epochs, seed=seed, device=device)

    english = ("en",)
    return (
        PlanStep("00-extract-e5", extract(E5, E5_SITE, DATA)),
        *(PlanStep(f"01-train-e5-seed{s}", fit("00-extract-e5", E5_SITE, s, 2)) for s in E5_SEEDS),
        PlanStep("01-train-e5-wide", fit("00-extract-e5", E5_SITE, 0, 2, WIDE)),
        PlanStep("02-extract-minilm", extract(MINILM, MINILM_SITE, DATA, english)),
        *(PlanStep(f"03-train-minilm-seed{s}", fit("02-extract-minilm", MINILM_SITE, s, 3)) for s in MINILM_SEEDS),
        *(step for c in COPIES for step in (
            PlanStep(f"04-extract-minilm-random-{c}", extract(f"{MINILM}+random-init-{c}", MINILM_SITE, DATA, english)),
            PlanStep(f"05-train-minilm-random-{c}", fit(f"04-extract-minilm-random-{c}", MINILM_SITE, 1, 3)))),
        PlanStep("06-extract-e5-random", extract(f"{E5}+random-init-0", E5_SITE, DATA)),
        PlanStep("07-train-e5-random", fit("06-extract-e5-random", E5_SITE, 0, 2)),
    )


SHIPPED = {  # name in data/saes -> (training step, extraction step, model, site, languages of the evaluation)
    **{f"e5-small-layer8-seed{s}": (f"01-train-e5-seed{s}", "00-extract-e5", E5, E5_SITE, ()) for s in E5_SEEDS},
    **{f"minilm-l6-layer4-seed{s}": (f"03-train-minilm-seed{s}", "02-extract-minilm", MINILM, MINILM_SITE, ("en",))
       for s in MINILM_SEEDS},
    **{f"minilm-l6-random-init-{c}-layer4-seed1": (f"05-train-minilm-random-{c}", f"04-extract-minilm-random-{c}",
                                                   f"{MINILM}+random-init-{c}", MINILM_SITE, ("en",)) for c in COPIES},
    "e5-small-random-init-0-layer8-seed0": ("07-train-e5-random", "06-extract-e5-random", f"{E5}+random-init-0", E5_SITE,
                                            ()),
}
CACHE_ONLY = {"e5-small-layer8-w16384-seed0": ("01-train-e5-wide", "00-extract-e5", E5, E5_SITE, ())}
"""Built and scored like the others, left in the cache (50 MB is too large for git)."""


def evaluation_stores(model: str, site: str, languages: tuple[str, ...], device: str) -> dict:
    """The stores each SAE is scored on: held-out text of its training domain, the concept sentences, the FreeDict
    words."""
    step = dict(model=model, sites=(site,), languages=languages, device=device, progress=False)
    return {"held-out training domain": run(ExtractStep(data=HELDOUT, **step)).store(site),
            "concept sentences": run(ExtractStep(data="concepts", **step)).store(site),
            "FreeDict words": run(ExtractStep(data="freedict", **step)).store(site)}


def export(folder: Path, target: Path) -> None:
    """Copy an SAE folder into data/saes/<name> (replacing an older one whole)."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def card(rows: list[dict]) -> str:
    head = ("| SAE (`data:<name>`) | model, site | width | rows × epochs | NMSE held-out domain | NMSE concept "
            "sentences | NMSE FreeDict words | domain-match ratio | L0 | dead (held-out) |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| `{r['name']}`{' (cache only)' if r['cache_only'] else ''} | {r['model']}, {r['site']} | {r['width']:,} | "
        f"{r['rows']:,} × {r['epochs']} | {r['eval']['held-out training domain']['nmse']:.3f} | "
        f"{r['eval']['concept sentences']['nmse']:.3f} | {r['eval']['FreeDict words']['nmse']:.3f} | "
        f"{r['domain_match']:.2f}{'' if r['domain_match'] <= AIM else ' (above the aim)'} | "
        f"{r['eval']['held-out training domain']['l0']:.1f} | "
        f"{100 * r['eval']['held-out training domain']['dead_fraction']:.1f}% |\n" for r in rows)
    return f"""# Shipped SAEs

TopK SAEs (k {K}) that the demo, the notebooks and the studies load as `data:<name>`
(`mmfeatures.sae.load_sae("data:e5-small-layer8-seed0")`). They are trained on a **general-domain multilingual
corpus** from Debian's archive (`{DATA}`; mmfeatures/datasets/general.py and [docs/data.md](../../docs/data.md)):
fortune cookies in 7 languages (GPL and others, each named in its package), the usage examples of FreeDict's
English-German dictionary (GPL-3+), the captions of half of Tux Paint's stamps (GPL-2) and a slice of LibreOffice's
help (MPL-2.0). Texts are de-duplicated by text, every text equal to an evaluation text is dropped, and the rest is
split 90/10 by a hash of the text: no verdict rests on an SAE scored on its training text.

- **e5-small, layer 8, seeds 0, 1, 2** (width {WIDTH:,}): the intervals over SAE seeds; one at width {WIDE:,} is built
  into the cache only.
- **MiniLM-L6, layer 4, seeds 1, 2, 3** (an English model; other seeds than e5's, so no match comes from a shared
  initialisation), on the corpus's English texts;
- **three random-init copies of MiniLM** (`{MINILM}+random-init-0/1/2`), each with its SAE on the same text: the
  baseline a real cross-model match must beat;
- **e5-small's random-init copy** (`{E5}+random-init-0`), layer 8, on the same corpus as e5's: the model each half of
  the cross-lingual verdict must also beat.

The **domain-match ratio** is the NMSE on the concept sentences (what the verdicts score) over the NMSE on held-out
text of the training domain (`{HELDOUT}`); the aim is at most {AIM}. NMSE is the squared error over the squared
distance to that store's mean (first {EVAL_ROWS:,} rows). The SAEs are SAELens-layout folders (`cfg.json`,
`sae_weights.safetensors`) whose `mmfeatures.json` records the key of the store they were trained on.

{head}{body}
Rebuild with `make saes` (resumable; see the closing numbers of the run in card.json). The numbers above are also in
`card.json`.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="reports/saes", help="folder for the steps' records")
    args = parser.parse_args()
    outcomes = {o.name: o.record for o in run_plan(plan(args.device), args.out, run)}
    target = data_root() / "saes"
    target.mkdir(exist_ok=True)
    rows = []
    for name, (train_step, extract_step, model, site, languages) in {**SHIPPED, **CACHE_ONLY}.items():
        folder = Path(outcomes[train_step].artifact("sae").path)
        metrics = json.loads((folder / "metrics.json").read_text())
        if name in SHIPPED:
            export(folder, target / name)
        sae = load_sae(f"data:{name}" if name in SHIPPED else str(folder))
        stores = evaluation_stores(model, site, languages, args.device)
        scores = {k: evaluate_sae(sae, s, max_rows=EVAL_ROWS) for k, s in stores.items()}
        rows.append({"name": name, "model": model, "site": site, "width": sae.d_sae, "cache_only": name in CACHE_ONLY,
                     "folder": str(folder), "data": outcomes[extract_step].config.get("data", "?"),
                     "languages": list(languages), "rows": outcomes[extract_step].store(site).n_rows,
                     "epochs": metrics["config"]["epochs"], "nmse_train": metrics["final"]["nmse"], "eval": scores,
                     "domain_match": scores["concept sentences"]["nmse"] / scores["held-out training domain"]["nmse"]})
        print(name, json.dumps(rows[-1]["eval"]), f"domain-match {rows[-1]['domain_match']:.2f}", flush=True)
    write_text_atomic(target / "card.json", json.dumps(rows, indent=1))
    write_text_atomic(target / "README.md", card(rows))


if __name__ == "__main__":
    main()
