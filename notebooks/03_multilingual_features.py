# %% [markdown]
# # 03 · Multilingual features: one concept, sixteen languages
#
# A TopK SAE on e5-small's layer 8 (the built-in sentences: 123 concepts, 16 languages). Pick a concept and
# languages: the heatmap shows the concept's strongest features in each language. A multilingual feature lights
# up its whole column. Below: each feature's language entropy against a shuffled-language null, and examples of
# multilingual and language-specific features. About a minute on CPU.

# %%
import numpy as np
import pandas as pd
from IPython.display import display

import mmfeatures as mmf
from mmfeatures import plotting, widgets
from mmfeatures.analysis import crosslingual, language_entropy, unit_activations
from mmfeatures.analysis.stats import permuted
from mmfeatures.recipes import cached_sae, check_sizes, concept_dataset, concept_store

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
check_sizes(n_perm=(n_perm, 5), width=(width, 64))
store = concept_store(model, site)
sae = cached_sae(store, mmf.TrainConfig(mmf.TopK(k=k), width, seed=seed, lr=3e-3, warmup_steps=20, batch_size=2048,
                                        dead_tokens=100_000, device='cpu'))
z, labels = unit_activations(store, sae)          # max over each sentence's tokens
texts = {e.id: e.content for e in concept_dataset()}
print(z.shape, 'sentences x features')

# %%
panel = widgets.concept_heatmap(z, labels, concept=concept)
display(panel)

# %%
cl = crosslingual(z, labels, n_perm=n_perm, seed=seed)
null_entropy = language_entropy(z, permuted(labels, 'language', np.random.default_rng(seed)))
fig = plotting.distributions({'SAE features': cl.entropy[cl.alive], 'languages shuffled (null)': null_entropy[cl.alive]},
                             xlabel='normalised language entropy (1 = spread evenly over all 16 languages)',
                             range_=(0, 1), title='Language entropy of features against a language-blind null')
cl.table().round(3)

# %%
# NBVAL_CHECK_OUTPUT
s = cl.scores['multilingual']
print(f"multilingual fraction {s.value:.1f} above its null {s.null_mean:.1f}: {s.value > s.null_mean + 3 * s.null_sd}")
row = panel.state['matrix'][:, 0]
print(f"'{concept}' top feature fires in >= 12 of {len(row)} languages: {bool((row > 0).sum() >= 12)}")


# %%
def show(feature, n=6):
    order = np.argsort(-z[:, feature])[:n]
    return pd.DataFrame({'activation': z[order, feature].round(2), 'language': labels.language[order],
                         'sentence': [texts[labels.example_id[i]] for i in order]})


multi = int(np.argmax(np.where(cl.multilingual, cl.concept_auroc, -1)))   # the most concept-selective one
specific = int(np.nanargmin(np.where(cl.alive, cl.entropy, np.nan)))
print('a multilingual feature:', multi)
display(show(multi))
print('a language-specific feature:', specific)
display(show(specific))
