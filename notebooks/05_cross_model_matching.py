# %% [markdown]
# # 05 · The same features across models
#
# Match units on activation correlation over the same inputs (Towards Monosemanticity; Lan et al. 2024), with the
# pipeline's match step: each unit of A against every unit of B, one row per sentence, the median best-match
# correlation and linear CKA each against a permuted-rows null, on the English built-in sentences (MiniLM is an
# English model). The SAEs are the shipped ones (`data/saes`, trained on the general-domain corpus). Four pairs:
# - the seed baseline: two SAEs on e5-small's layer 8 that differ only in their seed;
# - e5-small's SAE features against MiniLM's (independently trained), with MiniLM's random-init copy (its own SAE)
#   as the null model a real match must beat;
# - the same with neurons (mean-pooled sentences, matched on |r|);
# - a positive control: e5-small against e5-small-enpt, which has e5-small's own transformer weights.
# The explorer shows a feature's best match per token, a scatter and both top tokens. About 2 minutes on CPU.

# %%
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Image, display

import mmfeatures as mmf
from mmfeatures import widgets
from mmfeatures.analysis import aligned_units, streaming_topm
from mmfeatures.pipeline import ExtractStep, MatchStep, check_sizes, run

# %% tags=["parameters"]
# Parameters (papermill). On a GPU with hub models, e.g. model_related = 'hf:intfloat/multilingual-e5-base':
#   model = 'hf:intfloat/multilingual-e5-base'       (GPU; any transformers text encoder)
#   model = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'  (then site = 'text.layer.8.resid')
model = 'offline:e5-small'
model_related, model_unrelated = 'offline:e5-small-enpt', 'offline:minilm-l6'
site = 'text.layer.8.resid'
site_unrelated = 'text.layer.4.resid'
sae_a, sae_b = 'data:e5-small-layer8-seed0', 'data:e5-small-layer8-seed1'     # data/saes/README.md
sae_unrelated = 'data:minilm-l6-layer4-seed1'
sae_null = 'data:minilm-l6-random-init-0-layer4-seed1'
seeds_a = ('data:e5-small-layer8-seed1', 'data:e5-small-layer8-seed2')   # sae_a's other seeds: an interval (() to skip)
languages = ('en',)
n_perm = 19
seed = 0

# %%
check_sizes(n_perm=(n_perm, 19))


def stored(name, at, pooling='none'):
    """The store of ``name``'s activations at site ``at`` on the English sentences (its path)."""
    return str(run(ExtractStep(model=name, sites=(at,), pooling=pooling, languages=languages,
                               progress=False)).store(at).path)


out = Path(tempfile.mkdtemp(prefix='mmf-05-'))
e5, minilm, minilm_random = (stored(model, site), stored(model_unrelated, site_unrelated),
                             stored(f'{model_unrelated}+random-init-0', site_unrelated))
e5_mean = stored(model, site, 'mean')
pairs = {'SAE features, seed 0 vs 1 (seed baseline)': dict(store_a=e5, store_b=e5, sae_a=sae_a, sae_b=sae_b),
         'SAE features, e5 vs MiniLM': dict(store_a=e5, store_b=minilm, sae_a=sae_a, sae_b=sae_unrelated,
                                            store_null=(minilm_random,), sae_null=(sae_null,), seeds_a=tuple(seeds_a)),
         'neurons, e5 vs MiniLM': dict(store_a=e5_mean, store_b=stored(model_unrelated, site_unrelated, 'mean'),
                                       store_null=(stored(f'{model_unrelated}+random-init-0', site_unrelated, 'mean'),)),
         'neurons, e5 vs e5-enpt (same weights)': dict(store_a=e5_mean, store_b=stored(model_related, site, 'mean'))}
matches = {name: run(MatchStep(**pair, n_perm=n_perm, seed=seed, out=str(out / f'match-{i}')))
           for i, (name, pair) in enumerate(pairs.items())}
pd.DataFrame([{'pair': name, **{k: t[k] for k in ('value', 'null_mean', 'p_value', 'baseline', 'effect', 'low', 'high')},
               'detects (80% power)': t['power']['mde'], 'verdict': m.status}
              for name, m in matches.items() for t in m.tests]).set_index('pair').round(3)

# %%
print('Published anchor (a reference, not a target): about 30% of features shared by two SAEs that differ only in '
      'seed, at large width.')
for name, m in matches.items():
    print(f'{name}: {m.verdict}')
    display(Image(filename=str(Path(m.folder) / m.figures[0]['file'])))

# %%
# NBVAL_CHECK_OUTPUT
med = {name: m.tests[0] for name, m in matches.items()}    # median best-match correlation, with its null
seeds = med['SAE features, seed 0 vs 1 (seed baseline)']
print(f"median best-match correlation, features across seeds: {seeds['value']:.1f} vs permuted null "
      f"{seeds['null_mean']:.1f}")
print('seed baseline beats the null:', seeds['value'] > seeds['null_mean'] + 0.2)
print('seed baseline above e5 vs MiniLM:', seeds['value'] > med['SAE features, e5 vs MiniLM']['value'])
print('same-weights control closer than MiniLM:',
      med['neurons, e5 vs e5-enpt (same weights)']['value'] > med['neurons, e5 vs MiniLM']['value'])
print('SAE features, e5 vs MiniLM, against its random-init copy:', matches['SAE features, e5 vs MiniLM'].status)

# %% [markdown]
# The explorer works per token (both SAEs read the same token rows): each seed-A feature's best seed-B match over
# all tokens, a scatter of the two, and the top tokens of each. Features firing on fewer than 10 tokens have no
# match.

# %%
store = run(ExtractStep(model=model, sites=(site,), progress=False)).store(site)      # all 16 languages
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
print(f'{store.n_rows} token rows; {alive.sum()} of {za.shape[1]} features fire on >= 10 tokens')
start = int(np.flatnonzero(alive & (best > 0.8))[0]) if (alive & (best > 0.8)).any() else 0
widgets.match_explorer(za, zb, match, best, row_text, names=('seed A', 'seed B'), feature=start)

# %% [markdown]
# **Measured (the SAEs shipped since issue 31, trained on the general-domain corpus; 246 English sentences).** Two
# SAEs that differ only in seed: median best-match r 0.744, and 88% of features have a match with r ≥ 0.5 (the
# published figure, about 30% shared at large width, uses a stricter criterion on far larger SAEs; it is a reference,
# not a target). e5-small against MiniLM: 0.627, but MiniLM's random-init copy already reaches 0.554, so what
# MiniLM's training adds is a median 0.072 per feature, 95% interval 0.058 to 0.089 over rows and e5-small's three
# seeds: supported, and small beside what any encoder of these sentences' tokens shares. (The SAEs trained on
# LibreOffice's help gave 0.598 against 0.538.) Neurons show the same pattern with a larger margin (0.416 against
# 0.294). The demo repeats this on 7,337 held-out texts against three random-init copies.
