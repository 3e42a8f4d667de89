# %% [markdown]
# # 07 · Steering by clamping a feature (a Golden-Gate analog)
#
# Scaling Monosemanticity clamped a 'Golden Gate Bridge' feature and Claude talked about the bridge. Here: find
# e5-small's most 'dog'-selective SAE feature at layer 8, clamp it while embedding unrelated sentences, and watch
# where the dog sentences land in a retrieval ranking. A random feature is the control. About 2 minutes on CPU.

# %%
import numpy as np

import mmfeatures as mmf
from mmfeatures import widgets
from mmfeatures.analysis import max_activation, retrieval_curve, unit_activations
from mmfeatures.analysis.stats import auroc_by_class, ranks
from mmfeatures.recipes import cached_sae, concept_dataset, concept_store

# %% tags=["parameters"]
# Parameters (papermill). On a GPU with a hub model, e.g.:
#   model = 'hf:intfloat/multilingual-e5-base'       (GPU; any transformers text encoder)
#   model = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'  (then site = 'text.layer.8.resid')
model = 'offline:e5-small'
site = 'text.layer.8.resid'
width, k = 1536, 16
concept = 'dog'
strengths = [0, 1, 2, 3, 5]          # multiples of the feature's max activation
queries = ['bread', 'chair', 'river', 'school', 'red', 'five', 'freedom', 'run', 'happiness', 'village']
seed = 0

# %%
enc = mmf.load_encoder(model)
store = concept_store(enc, site)
sae = cached_sae(store, mmf.TrainConfig(mmf.TopK(k=k), width, seed=seed, lr=3e-3, warmup_steps=20, batch_size=2048,
                                        dead_tokens=100_000, device='cpu'))
z, labels = unit_activations(store, sae)
onehot, concepts = labels.onehot('concept')
if concept not in concepts:
    raise ValueError(f'concept = {concept!r} is not a built-in concept; e.g. {concepts[:8]}')
auc = auroc_by_class(ranks(z), onehot)[:, concepts.index(concept)]
feature = int(auc.argmax())
alive = np.flatnonzero((z > 0).sum(0) >= 20)
control = int(np.random.default_rng(seed).choice(alive[alive != feature]))
english = list(concept_dataset(['en']))
pool, target = [e.content for e in english], [e.concept == concept for e in english]
query_texts = [e.content for e in english if e.concept in queries]
x = store.rows(np.arange(store.n_rows))
curves = {}
for name, f in ((f'{concept} feature {feature}', feature), (f'random feature {control}', control)):
    scale = max_activation(sae, x, f)
    _, rank = retrieval_curve(enc, site, sae, f, query_texts, pool, target, [c * scale for c in strengths])
    curves[name] = {c: float(np.median(r)) for c, r in zip(strengths, rank, strict=True)}
print(f'feature {feature}: AUROC {auc[feature]:.2f} for {concept!r}; {len(query_texts)} queries, pool of {len(pool)}')

# %%
widgets.curve_slider(curves, xlabel='clamp × max', ylabel=f'median rank of the best {concept} sentence (0 = top)',
                     title=f'Median rank of the best {concept} sentence while clamping one feature')

# %%
# NBVAL_CHECK_OUTPUT
steered = list(curves.values())[0]
print(f'median rank unsteered > 50: {steered[strengths[0]] > 50}; at {strengths[-1]}x max <= 10: {steered[strengths[-1]] <= 10}')
print('the control moves less:', list(curves.values())[1][strengths[-1]] > steered[strengths[-1]])
