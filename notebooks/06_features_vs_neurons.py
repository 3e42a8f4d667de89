# %% [markdown]
# # 06 · Are SAE features more interpretable than neurons?
#
# Towards Monosemanticity's claim, measured without a language model as judge: for every unit, how well it
# picks out one concept (best-concept AUROC) and how pure its top-activating sentences are (purity). Neurons
# (signed) against TopK SAE features of three widths, on e5-small's layer 8, each with a shuffled-concept null.
# About 2 minutes on CPU.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import mmfeatures as mmf
from mmfeatures import plotting, widgets
from mmfeatures.analysis import interpretability, unit_activations
from mmfeatures.pipeline import ExtractStep, check_sizes, run

# %% tags=["parameters"]
# Parameters (papermill). On a GPU with a hub model, e.g.:
#   model = 'hf:intfloat/multilingual-e5-base'       (GPU; any transformers text encoder)
#   model = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'  (then site = 'text.layer.8.resid')
model = 'offline:e5-small'
site = 'text.layer.8.resid'
widths = [768, 1536, 3072]
k = 16
epochs = 3
seed = 0

# %%
check_sizes(k=(k, 1), epochs=(epochs, 1))
store = run(ExtractStep(model=model, sites=(site,), progress=False)).store(site)
pooled = run(ExtractStep(model=model, sites=(site,), pooling='mean', progress=False)).store(site)
# the three widths in one pass over the store; at epochs = 3, width 1536 is the SAE of notebooks 03, 05 and 07
# (same key, so it is trained once and reused)
saes = mmf.train(store, [mmf.TrainConfig(mmf.TopK(k=k), w, seed=seed, batch_size=2048, epochs=epochs) for w in widths],
                 progress=False).saes
results = {}
z, labels = unit_activations(pooled)
results['neurons'] = interpretability(z, labels, signed=True)
for w, sae in zip(widths, saes, strict=True):
    z, labels = unit_activations(store, sae)
    results[f'SAE {w}'] = interpretability(z, labels)
pd.DataFrame({name: r.summary('') for name, r in results.items()}).T.round(3)

# %%
# per unit set, the scores of the units that vary (AUROC is NaN for the others), then the widest SAE's null
live = {name: np.isfinite(r.auroc) for name, r in results.items()}
widest = f'SAE {widths[-1]}'
unit_sets = {name: {'best-concept AUROC': r.auroc[live[name]], 'top-20 purity': r.purity[live[name]]}
             for name, r in results.items()}
unit_sets[f'{widest}, shuffled concepts (null)'] = {'best-concept AUROC': results[widest].null_auroc,
                                                    'top-20 purity': results[widest].null_purity}
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
plotting.distributions({name: s['best-concept AUROC'] for name, s in unit_sets.items()},
                       xlabel='best-concept AUROC', title='Concept selectivity (AUROC) per unit set', ax=a)
plotting.distributions({name: s['top-20 purity'] for name, s in unit_sets.items()}, xlabel='top-20 purity',
                       range_=(0, 1), title='Purity of the top-20 sentences per unit set', ax=b)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
purity = {name: float(np.nanmedian(r.purity[live[name]])) for name, r in results.items()}
print(f"median purity: neurons {purity['neurons']:.1f}, {widest} {purity[widest]:.1f}")
print('widest SAE purer than neurons:', purity[widest] > purity['neurons'])
print('purity rises with width:', all(purity[f'SAE {a}'] <= purity[f'SAE {b}'] + 0.02 for a, b in zip(widths[:-1], widths[1:], strict=True)))

# %% [markdown]
# **Measured: neither Towards Monosemanticity claim holds here.** Purity breaks ties at random (a sparse unit's
# top rows are mostly tied zeros, and with rows ordered by concept, arbitrary tie-breaking filled them from one
# concept block). With that fixed, the widest SAE's median purity is below the neurons', and purity does not
# rise with width; with the old tie-breaking this notebook printed the opposite (0.3 against 0.2). Bricken et
# al. report 0.72 against 0.46, on another model and another measure (interpretability rated by a language
# model); it is printed as a reference, not a target. The SAEs are also scored on the sentences they were
# trained on, which favours them (issue 19).

# %% [markdown]
# Pick a score and the unit sets to compare: neurons, each SAE width and the shuffled-concept null.

# %%
widgets.score_distributions(unit_sets, ranges={'best-concept AUROC': (0.5, 1.0), 'top-20 purity': (0.0, 1.0)})

# %% [markdown]
# Median AUROC is a different story on this model: neurons are dense and graded, so many of them rank a
# concept's sentences well, while a sparse feature is zero on most sentences. See `docs/results/consistency.md`
# for the full study across models and layers.
