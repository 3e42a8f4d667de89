"""Rebuild the SAEs shipped in data/saes (`make saes`; about 70 minutes on 2 CPU cores, resumable).

They are trained on LibreOffice's help (Debian's archive, docs/data.md), never on the text they are scored on:
- e5-small layer 8, three seeds, on 2 M tokens of the training split in the 13 built-in languages it has;
- MiniLM-L6 layer 4 and its random-init copy (the null a real match must beat), on the English paragraphs of the
  same 8,500 keys, three passes.
Each is then evaluated on the held-out split (paragraph keys the training never saw) and on the built-in concept
sentences, and the numbers go into data/saes/README.md and card.json. Everything runs as pipeline steps, so an
interrupted build resumes and a finished one is reused by its keys.

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
MINILM_RANDOM = f"{MINILM}+random-init-0"
E5_SITE, MINILM_SITE = "text.layer.8.resid", "text.layer.4.resid"
E5_DATA = "libreoffice:8500"        # 8,500 paragraph keys in 13 languages: 2.1 M tokens
E5_SEEDS = (0, 1, 2)
WIDTH, K = 1536, 16
HELDOUT = "libreoffice-heldout:400"  # paragraph keys no SAE saw, for the card's held-out NMSE
EVAL_ROWS = 200_000


def plan(device: str) -> tuple[PlanStep, ...]:
    def extract(model, site, data, languages=()):
        return ExtractStep(model=model, sites=(site,), data=data, languages=languages, device=device)

    def fit(step, site, seed, epochs):
        return TrainStep(store=StoreOf(step, site), width=WIDTH, k=K, epochs=epochs, seed=seed, device=device)

    english = ("en",)
    return (
        PlanStep("00-extract-e5", extract(E5, E5_SITE, E5_DATA)),
        *(PlanStep(f"01-train-e5-seed{s}", fit("00-extract-e5", E5_SITE, s, 1)) for s in E5_SEEDS),
        PlanStep("02-extract-minilm", extract(MINILM, MINILM_SITE, E5_DATA, english)),
        PlanStep("03-train-minilm", fit("02-extract-minilm", MINILM_SITE, 1, 3)),
        PlanStep("04-extract-minilm-random", extract(MINILM_RANDOM, MINILM_SITE, E5_DATA, english)),
        PlanStep("05-train-minilm-random", fit("04-extract-minilm-random", MINILM_SITE, 1, 3)),
    )


SHIPPED = {  # name in data/saes -> (training step, extraction step, model, site, languages of the evaluation)
    **{f"e5-small-layer8-seed{s}": (f"01-train-e5-seed{s}", "00-extract-e5", E5, E5_SITE, ()) for s in E5_SEEDS},
    "minilm-l6-layer4-seed1": ("03-train-minilm", "02-extract-minilm", MINILM, MINILM_SITE, ("en",)),
    "minilm-l6-random-init-0-layer4-seed1": ("05-train-minilm-random", "04-extract-minilm-random", MINILM_RANDOM,
                                             MINILM_SITE, ("en",)),
}


def evaluation_stores(model: str, site: str, languages: tuple[str, ...], device: str) -> dict:
    """The stores each shipped SAE is scored on: held-out LibreOffice paragraphs and the concept sentences."""
    step = dict(model=model, sites=(site,), languages=languages, device=device, progress=False)
    return {"heldout LibreOffice": run(ExtractStep(data=HELDOUT, **step)).store(site),
            "concept sentences": run(ExtractStep(data="concepts", **step)).store(site)}


def export(name: str, folder: Path, target: Path) -> None:
    """Copy an SAE folder into data/saes/<name> (replacing an older one whole)."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def card(rows: list[dict]) -> str:
    head = ("| SAE (`data:<name>`) | model, site | trained on | rows × epochs | NMSE train | NMSE held-out "
            "LibreOffice | NMSE concept sentences | L0 | dead (held-out) |\n|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| `{r['name']}` | {r['model']}, {r['site']} | {r['data']} | {r['rows']:,} × {r['epochs']} | "
        f"{r['nmse_train']:.3f} | {r['eval']['heldout LibreOffice']['nmse']:.3f} | "
        f"{r['eval']['concept sentences']['nmse']:.3f} | {r['eval']['heldout LibreOffice']['l0']:.1f} | "
        f"{100 * r['eval']['heldout LibreOffice']['dead_fraction']:.1f}% |\n" for r in rows)
    return f"""# Shipped SAEs

TopK SAEs (width {WIDTH}, k {K}) that the demo, the notebooks and the studies load as `data:<name>`
(`mmfeatures.sae.load_sae("data:e5-small-layer8-seed0")`). They are trained on **LibreOffice's help** from
Debian's archive (MPL-2.0; see [docs/data.md](../../docs/data.md)), not on the built-in concept sentences,
emoji or photos they are scored on, so no verdict rests on an SAE scored on its training text.

- **e5-small, layer 8, seeds 0, 1, 2**: `{E5_DATA}` (8,500 paragraph keys of the training split, drawn with
  seed 0, in the 13 built-in languages LibreOffice's help has: all but ar, fa, sw), one pass. The three seeds
  give the intervals over SAE seeds and the seed baseline of cross-model matching.
- **MiniLM-L6, layer 4** (an English model): the English paragraphs of the same 8,500 keys, three passes;
  **its random-init copy** (`{MINILM_RANDOM}`) on the same text: the null a real cross-model match must beat.

Held-out LibreOffice is `{HELDOUT}` (paragraph keys in no SAE's training split); the concept sentences are
`data/concepts`. NMSE is the squared error over the squared distance to that store's mean (first
{EVAL_ROWS:,} rows). The SAEs are SAELens-layout folders (`cfg.json`, `sae_weights.safetensors`) whose
`mmfeatures.json` records the key of the store they were trained on.

{head}{body}
Rebuild with `make saes` (about 70 minutes on 2 CPU cores: extracting 2.1 M tokens through e5-small took 54 of them; resumable).
The numbers above are also in `card.json`.
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
    for name, (train_step, extract_step, model, site, languages) in SHIPPED.items():
        folder = Path(outcomes[train_step].artifact("sae").path)
        metrics = json.loads((folder / "metrics.json").read_text())
        export(name, folder, target / name)
        sae = load_sae(f"data:{name}")
        train_store = outcomes[extract_step].store(site)
        stores = {"training rows": train_store, **evaluation_stores(model, site, languages, args.device)}
        rows.append({"name": name, "model": model, "site": site,
                     "data": f"{outcomes[extract_step].config.get('data', '?')} {','.join(languages)}".strip(),
                     "rows": train_store.n_rows, "epochs": metrics["config"]["epochs"],
                     "nmse_train": metrics["final"]["nmse"],
                     "eval": {k: evaluate_sae(sae, s, max_rows=EVAL_ROWS) for k, s in stores.items()}})
        print(name, json.dumps(rows[-1]["eval"]))
    write_text_atomic(target / "card.json", json.dumps(rows, indent=1))
    write_text_atomic(target / "README.md", card(rows))


if __name__ == "__main__":
    main()
