# %% [markdown]
# # 07 · Steering by clamping a feature (a Golden-Gate analog)
#
# Scaling Monosemanticity clamped a 'Golden Gate Bridge' feature and Claude talked about the bridge. Here, with the
# pipeline's steer step: find e5-small's most 'dog'-selective SAE feature at layer 8, clamp it while embedding
# sentences about other concepts, and watch where the best dog sentence lands in a retrieval ranking of the
# English sentences. The null clamps `n_perm` random live features just as hard. About 2 minutes on CPU.

# %%
import tempfile
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

from mmfeatures import widgets
from mmfeatures.pipeline import ExtractStep, SteerStep, TrainStep, check_sizes, run

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
n_perm = 19                          # random features clamped as hard (the null)
seed = 0

# %%
check_sizes(n_perm=(n_perm, 19))    # p <= 0.05 needs at least 19 random features
store = run(ExtractStep(model=model, sites=(site,), progress=False)).store(site)
sae = run(TrainStep(store=str(store.path), width=width, k=k, seed=seed, progress=False)).artifact('sae').path
steered = run(SteerStep(sae=sae, concept=concept, strengths=tuple(strengths), queries=tuple(queries), n_perm=n_perm,
                        seed=seed, out=tempfile.mkdtemp(prefix='mmf-07-')))
print(steered.verdict)
display(Image(filename=str(Path(steered.folder) / steered.figures[0]['file'])))
table = steered.tables[0]
pd.DataFrame(table['rows'], columns=table['columns'])

# %% [markdown]
# Move the slider along the clamp strength: the median rank (1 = top) of the best dog sentence over the queries.
# The random features were clamped at the strongest value only (the figure above).

# %%
curve = {float(c): float(r) for c, r in table['rows']}
null = steered.scores[0]
weakest, strongest = min(curve), max(curve)
widgets.curve_slider({f"'{concept}' feature": curve}, xlabel='clamp × max',
                     ylabel=f'median rank of the best {concept} sentence (1 = top)',
                     title=f"Clamping the '{concept}' feature ({null['n_perm']} random features at {strongest:g}x: "
                           f"mean rank {null['null_mean']:.0f})")

# %%
# NBVAL_CHECK_OUTPUT
print(f'median rank at {weakest:g}x max > 50: {curve[weakest] > 50}; at {strongest:g}x max <= 10: {curve[strongest] <= 10}')
print(f"the '{concept}' feature lifts it above random features clamped as hard (rank < their mean rank):",
      null['value'] < null['null_mean'])
print('supported (p <= 0.05):', steered.supported)
