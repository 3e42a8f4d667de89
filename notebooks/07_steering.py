# %% [markdown]
# # 07 · Steering by clamping a feature (a Golden-Gate analog)
#
# Scaling Monosemanticity clamped a 'Golden Gate Bridge' feature and Claude talked about the bridge. Here, with the
# pipeline's steer step: find e5-small's most 'dog'-selective SAE feature at layer 8 (the shipped SAE, trained on
# LibreOffice's help) on each concept's first sentence, clamp it, within its observed range, while embedding
# other concepts' second sentences, and watch where the best dog sentence lands among the English second
# sentences. The null: the most selective features of `n_perm` other concepts, clamped to the same multiple of
# their own largest activation. The baseline that can win: the dog mean-difference vector added at the norm the
# clamp writes. About 2 minutes on CPU.

# %%
import tempfile
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

from mmfeatures import widgets
from mmfeatures.pipeline import ExtractStep, SteerStep, check_sizes, run

# %% tags=["parameters"]
# Parameters (papermill). On a GPU with a hub model, e.g.:
#   model = 'hf:intfloat/multilingual-e5-base'       (GPU; any transformers text encoder)
#   model = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'  (then site = 'text.layer.8.resid')
model = 'offline:e5-small'
site = 'text.layer.8.resid'
sae = 'data:e5-small-layer8-seed0'   # trained on LibreOffice's help (data/saes/README.md)
seeds = ('data:e5-small-layer8-seed1', 'data:e5-small-layer8-seed2')   # the same SAE, other seeds (() for other models)
concept = 'dog'
strengths = [0, 0.25, 0.5, 1]        # multiples of the feature's largest activation: within its range
queries = ['bread', 'chair', 'river', 'school', 'red', 'five', 'freedom', 'run', 'happiness', 'village']
n_perm = 19                          # other concepts' features clamped as hard (the null)
seed = 0

# %%
check_sizes(n_perm=(n_perm, 19))    # p <= 0.05 needs at least 19 other features
store = run(ExtractStep(model=model, sites=(site,), progress=False)).store(site)
steered = run(SteerStep(sae=sae, seeds=tuple(seeds), store=str(store.path), concept=concept, strengths=tuple(strengths), queries=tuple(queries), n_perm=n_perm,
                        seed=seed, out=tempfile.mkdtemp(prefix='mmf-07-')))
print(steered.verdict)
display(Image(filename=str(Path(steered.folder) / steered.figures[0]['file'])))
table = steered.tables[0]
display(pd.DataFrame(table['rows'], columns=table['columns']))
if seeds:                            # each seed picks its own feature and is clamped against the same concepts
    display(pd.DataFrame(steered.tables[1]['rows'], columns=steered.tables[1]['columns']))

# %% [markdown]
# Move the slider along the clamp strength: the median rank (1 = top) of the best dog sentence over the queries.
# The other concepts' features were clamped at the strongest value only (the figure above).

# %%
curve = {float(c): float(r) for c, _, r in table['rows']}
null = steered.scores[0]
weakest, strongest = min(curve), max(curve)
widgets.curve_slider({f"'{concept}' feature": curve}, xlabel='clamp × max',
                     ylabel=f'median rank of the best {concept} sentence (1 = top)',
                     title=f"Clamping the '{concept}' feature ({null['n_perm']} other features at {strongest:g}x: "
                           f"mean rank {null['null_mean']:.0f})")

# %%
# NBVAL_CHECK_OUTPUT
print(f'median rank unsteered > 50: {curve[weakest] > 50}; the clamp moves it up (rank at {strongest:g}x < unsteered): '
      f'{curve[strongest] < curve[weakest]}')
print(f"the '{concept}' feature lifts it above other concepts' features clamped as hard (rank < their mean rank):",
      null['value'] < null['null_mean'])
print('supported (p <= 0.05, and the interval over seeds above 0):', steered.supported)
print('beats the mean-difference vector at equal norm:', 'so the SAE feature beats it' in steered.verdict)

# %% [markdown]
# **Measured (shipped SAE, seed 0).** Within the feature's observed range, clamping the 'dog' feature moves the best
# dog sentence from median rank 101 to 60 among the 123 English second sentences, while other concepts' features
# clamped as hard leave it near 100 (p ≤ 0.05 with 19 of them; the full demo's 99 give p = 0.12, so the
# specificity is borderline). It is not strong either: the
# clamp writes a vector of about 0.6 times a median token's norm, and the plain 'dog' mean-difference vector added
# at that norm reaches rank 2.5. On this model and SAE, the SAE feature does not beat the simplest baseline. Over
# the three shipped seeds (each picks its own 'dog' feature, clamped against the same 19 concepts) the clamp gains
# 35 ranks beyond the other features on average, with a 95% interval of −16 to 87: the specificity is not
# established across seeds, so the verdict is "not supported".
# (Earlier versions clamped at 5× the largest activation, beyond the observed range, and reported rank 196 → 2
# without the baseline.)
