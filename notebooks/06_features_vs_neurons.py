# %% [markdown]
# # 06 · Are SAE features better concept detectors than neurons, read the same way?
#
# Towards Monosemanticity's claim, measured without a language model as judge and like for like
# (docs/verdicts.md). Both sides are read as sparse dictionaries, one-signed and max-pooled over a sentence's
# tokens: the SAE's latents, and e5-small's neurons as the signed basis (each coordinate and its negation, 768
# units) keeping the SAE's L0 per token. A unit's concept is the one most common among each concept's first
# sentences it fires on; it is a *precise detector* when it fires on at least 3 second sentences and at least half of
# them are that concept's (precision). Recall (the share of the concept's sentences it fires on) is shown, not
# required; AUROC alone rewards recall. A wider dictionary scores differently whatever it learnt, so each side is measured beyond
# random directions of its own width and L0. First the shipped SAEs (three seeds, trained on the general-domain
# corpus), then SAEs of three widths trained on a slice of it; all scored on the built-in sentences, never seen.
# About 4 minutes on CPU.

# %%
import pandas as pd

import mmfeatures as mmf
from mmfeatures import widgets
from mmfeatures.analysis import unit_activations
from mmfeatures.analysis.baselines import NeuronBasis
from mmfeatures.analysis.evidence_neurons import detectors
from mmfeatures.analysis.labels import pooled_units
from mmfeatures.pipeline import AnalyzeStep, ExtractStep, check_sizes, run

# %% tags=["parameters"]
# Parameters (papermill). On a GPU with a hub model, e.g.:
#   model = 'hf:intfloat/multilingual-e5-base'       (GPU; any transformers text encoder)
model = 'offline:e5-small'
site = 'text.layer.8.resid'
shipped = ['data:e5-small-layer8-seed0', 'data:e5-small-layer8-seed1', 'data:e5-small-layer8-seed2']
train_data = 'general:300'       # the width sweep's training text: the general-domain corpus (as docs/results/consistency.md)
widths = [768, 1536, 3072]
k = 16
epochs = 3
n_perm = 19
seed = 0

# %%
check_sizes(k=(k, 1), epochs=(epochs, 1), n_perm=(n_perm, 19))
store = run(ExtractStep(model=model, sites=(site,), progress=False)).store(site)
verdict = run(AnalyzeStep(stores=(str(store.path),), sae=shipped[0], seeds=tuple(shipped[1:]),
                          kind='features-vs-neurons', n_perm=n_perm, seed=seed, out=None))
print(verdict.verdict)
table = verdict.tables[0]
pd.DataFrame(table['rows'], columns=table['columns']).set_index('units')

# %%
# NBVAL_CHECK_OUTPUT
t = verdict.tests[0]
print('shipped SAEs against the neurons read the same way:', verdict.status)
print('the SAE beats random directions of its width:', table['rows'][0][2] > table['rows'][2][2])

# %% [markdown]
# The same comparison over width: an SAE of each width, trained on a slice of the general-domain corpus, each
# against the neurons read as a dictionary, each beyond random directions of its own width.

# %%
training = run(ExtractStep(model=model, sites=(site,), data=train_data, progress=False)).store(site)
saes = mmf.train(training, [mmf.TrainConfig(mmf.TopK(k=k), w, seed=seed, batch_size=2048, epochs=epochs)
                            for w in widths], progress=False)
rows = []
for w, trained in zip(widths, saes, strict=True):
    r = run(AnalyzeStep(stores=(str(store.path),), sae=str(trained.folder), kind='features-vs-neurons', n_perm=n_perm,
                        seed=seed, label=f'width {w}', out=None))
    shares = {row[0].split(' (')[0].split(',')[0]: row[2] for row in r.tables[0]['rows']}
    rows.append({'width': w, 'SAE': shares['SAE features'], 'random, SAE width': shares['random directions'],
                 'neurons as a dictionary': shares['neurons as a dictionary'], 'effect': r.tests[0]['effect'],
                 'low': r.tests[0]['low'], 'high': r.tests[0]['high'], 'verdict': r.status})
sweep = pd.DataFrame(rows).set_index('width')
sweep.round(4)

# %%
# NBVAL_CHECK_OUTPUT
print('verdicts over width:', dict(sweep['verdict']))

# %% [markdown]
# Pick a score and the unit sets to compare: each live unit's precision and recall (on the second sentences, for
# the concept it picks on the first), for the shipped SAE and the neurons read the same way.

# %%
sae = mmf.load_sae(shipped[0])
z, labels = unit_activations(store, sae)
keep = (labels.modality == 'text') & (labels.language != '')
basis = NeuronBasis(sae.b_dec.detach().numpy(), k)
zn = pooled_units(store, basis)[0]
found = {'SAE features': detectors(z[keep], labels.take(keep.nonzero()[0])),
         'neurons as a dictionary': detectors(zn[keep], labels.take(keep.nonzero()[0]))}
widgets.score_distributions({name: {'precision': d.precision[d.alive], 'recall': d.recall[d.alive]}
                             for name, d in found.items()}, ranges={'precision': (0, 1), 'recall': (0, 1)})

# %% [markdown]
# **Measured (e5-small layer 8, the built-in sentences; the shipped SAEs trained on the general-domain corpus).**
# Read the same way, precise concept detectors are rare on both sides: 1.8% of the seed-0 SAE's live units against
# 0.16% of the neurons read as a dictionary and 0.1% of random directions of the SAE's width. Beyond random
# directions of each side's width the effect is 0.0105 over three seeds (95% interval 0.0018 to 0.021), just above
# the declared floor of 0.01, and the test detects 0.013 with 80% power: supported, narrowly. The width sweep
# (one seed each) is not supported at 768 and 1,536 latents and supported at 3,072. Median precision where a unit
# fires is under 1% on every side: most units, features included, fire on many concepts' sentences. The earlier
# "features do not beat neurons" (best-concept AUROC, neurons read dense and mean-pooled) compared unlike readouts;
# docs/results/consistency.md still holds that older study until `make studies` reruns it.
