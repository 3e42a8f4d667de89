# %% [markdown]
# # 03 · Multilingual features: one concept, sixteen languages
#
# A TopK SAE on e5-small's layer 8 (the built-in sentences: 123 concepts, 16 languages). Pick a concept and
# languages: the heatmap shows the concept's strongest features in each language. A multilingual feature lights
# up its whole column. Below, the pipeline's cross-lingual analysis: the multilingual fraction against random
# directions of the same width and sparsity (a baseline that can win), the overlap of two *different* sentences of
# a concept in two languages against other concepts (translations share their sentence content, so their overlap
# is reported but not used for the verdict), each feature's language entropy against a shuffled-language null,
# and the most concept-selective multilingual features with their top sentences; then a language-specific
# feature for contrast. The SAE is scored on the sentences it was trained on (an in-sample figure; issue 19 moves
# training to held-out text). About two minutes on CPU.

# %%
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Image, display

import mmfeatures as mmf
from mmfeatures import widgets
from mmfeatures.analysis import language_entropy, unit_activations
from mmfeatures.pipeline import AnalyzeStep, ExtractStep, TrainStep, check_sizes, run

# %% tags=["parameters"]
# Parameters (papermill). On a GPU with a hub model, e.g.:
#   model = 'hf:intfloat/multilingual-e5-base'       (GPU; any transformers text encoder)
#   model = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'  (then site = 'text.layer.8.resid')
model = 'offline:e5-small'
site = 'text.layer.8.resid'
width, k = 1536, 16
concept = 'dog'
n_perm = 20
seed = 0

# %%
check_sizes(n_perm=(n_perm, 19), width=(width, 64))
store = run(ExtractStep(model=model, sites=(site,), progress=False)).store(site)
trained = run(TrainStep(store=str(store.path), width=width, k=k, seed=seed, progress=False))
sae = trained.sae()
z, labels = unit_activations(store, sae)          # max over each sentence's tokens
texts = {e.id: e.content for e in mmf.ConceptDataset.builtin(['concepts'])}
print(z.shape, 'sentences x features')

# %%
panel = widgets.concept_heatmap(z, labels, concept=concept)
display(panel)

# %%
analyzed = run(AnalyzeStep(stores=(str(store.path),), sae=trained.artifact('sae').path, kind='crosslingual',
                           concept=concept, n_perm=n_perm, seed=seed, out=tempfile.mkdtemp(prefix='mmf-03-')))
print(analyzed.verdict)
display(Image(filename=str(Path(analyzed.folder) / 'entropy.png')))
pd.DataFrame(analyzed.scores).set_index('metric').round(3)

# %%
# NBVAL_CHECK_OUTPUT
s = next(row for row in analyzed.scores if row['metric'] == 'multilingual fraction against random directions')
print(f"more multilingual units than random directions of the same width and sparsity: {s['value'] > s['null_mean']}")
row = panel.state['matrix'][:, 0]
print(f"'{concept}' top feature fires in >= 12 of {len(row)} languages: {bool((row > 0).sum() >= 12)}")

# %% [markdown]
# The most concept-selective multilingual features (concept AUROC >= 0.9, language entropy >= 0.8) and their
# top sentences, from the analysis; then the live feature with the lowest language entropy, which fires for one
# language rather than one concept.

# %%
table = analyzed.tables[0]
display(pd.DataFrame(table['rows'], columns=table['columns']))


def show(feature, n=6):
    order = np.argsort(-z[:, feature])[:n]
    return pd.DataFrame({'activation': z[order, feature].round(2), 'language': labels.language[order],
                         'sentence': [texts[labels.example_id[i]] for i in order]})


live = (z > 0).sum(0) >= 3                        # fires on at least 3 sentences
specific = int(np.nanargmin(np.where(live, language_entropy(z, labels), np.nan)))
print('a language-specific feature:', specific)
display(show(specific))
