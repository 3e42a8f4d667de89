# %% [markdown]
# # 05 · The same features across models
#
# Match units on activation correlation over the same inputs (Towards Monosemanticity; Lan et al. 2024), with the
# pipeline's match step: each unit of A against every unit of B, one row per sentence, the median best-match
# correlation and linear CKA each against a permuted-rows null. Three pairs: two SAEs on e5-small's layer 8 that
# differ only in their seed; e5-small's neurons against e5-small-enpt (related); and against MiniLM (unrelated),
# on mean-pooled sentences. The explorer shows a feature's best match per token, a scatter and both top tokens.
# About 2 minutes on CPU.

# %%
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Image, display

import mmfeatures as mmf
from mmfeatures import widgets
from mmfeatures.analysis import aligned_units, streaming_topm
from mmfeatures.pipeline import ExtractStep, MatchStep, TrainStep, check_sizes, run

# %% tags=["parameters"]
# Parameters (papermill). On a GPU with hub models, e.g. model_related = 'hf:intfloat/multilingual-e5-base':
#   model = 'hf:intfloat/multilingual-e5-base'       (GPU; any transformers text encoder)
#   model = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'  (then site = 'text.layer.8.resid')
model = 'offline:e5-small'
model_related, model_unrelated = 'offline:e5-small-enpt', 'offline:minilm-l6'
site = 'text.layer.8.resid'
site_unrelated = 'text.layer.4.resid'
width, k = 1536, 16
seed_a, seed_b = 0, 1
n_perm = 19
seed = 0

# %%
check_sizes(n_perm=(n_perm, 19), width=(width, 64))
store = run(ExtractStep(model=model, sites=(site,), progress=False)).store(site)
sae_a, sae_b = (run(TrainStep(store=str(store.path), width=width, k=k, seed=s, progress=False)).artifact('sae').path
                for s in (seed_a, seed_b))


def pooled(name, at):
    """The store of ``name``'s mean-pooled activations at site ``at`` (its path)."""
    return str(run(ExtractStep(model=name, sites=(at,), pooling='mean', progress=False)).store(at).path)


out = Path(tempfile.mkdtemp(prefix='mmf-05-'))
e5 = pooled(model, site)
pairs = {'SAE features, seed A vs B': dict(store_a=str(store.path), store_b=str(store.path), sae_a=sae_a, sae_b=sae_b),
         'neurons, e5 vs e5-enpt': dict(store_a=e5, store_b=pooled(model_related, site)),
         'neurons, e5 vs MiniLM': dict(store_a=e5, store_b=pooled(model_unrelated, site_unrelated))}
matches = {name: run(MatchStep(**pair, n_perm=n_perm, seed=seed, out=str(out / f'match-{i}')))
           for i, (name, pair) in enumerate(pairs.items())}
pd.DataFrame([{'pair': name, **row} for name, m in matches.items() for row in m.scores]).set_index('pair').round(3)

# %%
for name, m in matches.items():
    print(f'{name}: {m.verdict}')
    display(Image(filename=str(Path(m.folder) / m.figures[0]['file'])))

# %%
# NBVAL_CHECK_OUTPUT
med = {name: m.scores[0] for name, m in matches.items()}   # median best-match correlation, with its null
seeds = med['SAE features, seed A vs B']
print(f"median best-match correlation, features across seeds: {seeds['value']:.1f} vs permuted null "
      f"{seeds['null_mean']:.1f}")
print('features beat the null:', seeds['value'] > seeds['null_mean'] + 0.2)
print('related model closer than unrelated:',
      med['neurons, e5 vs e5-enpt']['value'] > med['neurons, e5 vs MiniLM']['value'])

# %% [markdown]
# The explorer works per token (both SAEs read the same token rows): each seed-A feature's best seed-B match over
# all tokens, a scatter of the two, and the top tokens of each. Features firing on fewer than 10 tokens have no
# match.

# %%
za, zb = aligned_units(store, store, mmf.load_sae(sae_a), mmf.load_sae(sae_b))
rows = 16384
values, index = streaming_topm(lambda: ((za[i:i + rows], zb[i:i + rows]) for i in range(0, len(za), rows)),
                               za.shape[1], zb.shape[1])
best, alive = values[:, 0].numpy(), (za > 0).sum(0) >= 10
match = np.where(alive, index[:, 0].numpy(), -1)
prov = store.provenance()
texts = {e.id: e.content for e in mmf.ConceptDataset.builtin(['concepts'])}
row_text = [f"{store.examples[i]['language']}: {texts[store.examples[i]['id']][:40]} [{tok}]"
            for i, tok in zip(prov.example_index, prov.token, strict=True)]
print(f'{store.n_rows} token rows; {alive.sum()} of {width} features fire on >= 10 tokens')
start = int(np.flatnonzero(alive & (best > 0.8))[0]) if (alive & (best > 0.8)).any() else 0
widgets.match_explorer(za, zb, match, best, row_text, names=('seed A', 'seed B'), feature=start)
