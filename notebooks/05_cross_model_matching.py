# %% [markdown]
# # 05 · The same features across models
#
# Match units on activation correlation over the same inputs (Towards Monosemanticity; Lan et al. 2024). Two
# SAEs that differ only in their seed, on e5-small's layer 8 tokens; then e5-small's neurons against
# e5-small-enpt (related) and MiniLM (unrelated) on pooled sentences. Every distribution sits next to a
# permuted-rows null. The explorer shows a feature's match, a scatter and both top sentences. About 2 minutes on
# CPU.

# %%
import numpy as np

import mmfeatures as mmf
from mmfeatures import plotting, widgets
from mmfeatures.analysis import max_correlation, streaming_topm
from mmfeatures.analysis.labels import encode_rows
from mmfeatures.recipes import cached_sae, concept_dataset, concept_store

# %% tags=["parameters"]
# Parameters (papermill). On a GPU with hub models, e.g. model_related = 'hf:intfloat/multilingual-e5-base':
#   model = 'hf:intfloat/multilingual-e5-base'       (GPU; any transformers text encoder)
#   model = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'  (then site = 'text.layer.8.resid')
model = 'offline:e5-small'
model_related, model_unrelated = 'offline:e5-small-enpt', 'offline:minilm-l6'
site = 'text.layer.8.resid'
width, k = 1536, 16
seed_a, seed_b = 0, 1
seed = 0

# %%
store = concept_store(model, site)
base = dict(lr=3e-3, warmup_steps=20, batch_size=2048, dead_tokens=100_000, device='cpu')
sae_a = cached_sae(store, mmf.TrainConfig(mmf.TopK(k=k), width, seed=seed_a, **base))
sae_b = cached_sae(store, mmf.TrainConfig(mmf.TopK(k=k), width, seed=seed_b, **base))
x = store.array()
za, zb = encode_rows(sae_a, x), encode_rows(sae_b, x)


def best_match(a, b, rows=16384):
    """Each A unit's best correlation with any B unit, and that unit (streamed over ``rows``-row chunks; dead
    units get 0)."""
    values, index = streaming_topm(lambda: ((a[i:i + rows], b[i:i + rows]) for i in range(0, len(a), rows)),
                                   a.shape[1], b.shape[1])
    return values[:, 0].numpy(), index[:, 0].numpy()


best, match = best_match(za, zb)
null, _ = best_match(za, zb[np.random.default_rng(seed).permutation(len(zb))])
alive = (za > 0).sum(0) >= 10
print(f'{store.n_rows} token rows; {alive.sum()} of {width} features fire on >= 10 tokens')


# %%
def pooled(name, layer):
    return concept_store(name, f'text.layer.{layer}.resid', pooling='mean').array()


e5, related, unrelated = pooled(model, 8), pooled(model_related, 8), pooled(model_unrelated, 4)
perm = np.random.default_rng(seed).permutation(len(e5))
groups = {'SAE features, seed A vs B': best[alive], 'features, permuted rows (null)': null[alive],
          'neurons, e5 vs e5-enpt': max_correlation(e5, related), 'neurons, e5 vs MiniLM': max_correlation(e5, unrelated),
          'neurons, e5 vs MiniLM, permuted (null)': max_correlation(e5, unrelated[perm])}
fig = plotting.distributions(groups, xlabel='max correlation with any unit of the other model', range_=(0, 1),
                             title='Best-match correlation per unit, across seeds and models, with permuted-row nulls')

# %%
# NBVAL_CHECK_OUTPUT
med = {name: float(np.median(v)) for name, v in groups.items()}
print(f"median max-corr, features across seeds: {med['SAE features, seed A vs B']:.1f} vs permuted null "
      f"{med['features, permuted rows (null)']:.1f}")
print('features beat the null:', med['SAE features, seed A vs B'] > med['features, permuted rows (null)'] + 0.2)
print('related model closer than unrelated:', med['neurons, e5 vs e5-enpt'] > med['neurons, e5 vs MiniLM'])

# %%
match = np.where(alive, match, -1)
prov = store.provenance()
texts = {e.id: e.content for e in concept_dataset()}
row_text = [f"{store.examples[i]['language']}: {texts[store.examples[i]['id']][:40]} [{tok}]"
            for i, tok in zip(prov.example_index, prov.token, strict=True)]
start = int(np.flatnonzero(alive & (best > 0.8))[0]) if (alive & (best > 0.8)).any() else 0
widgets.match_explorer(za, zb, match, best, row_text, names=('seed A', 'seed B'), feature=start)
