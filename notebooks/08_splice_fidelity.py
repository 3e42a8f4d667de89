# %% [markdown]
# # 08 · What splicing the SAE in costs
#
# Replace layer 8's residual stream by the SAE's reconstruction and run the rest of e5-small: how much of the
# clean model's behaviour survives (embedding cosine, concept retrieval, cross-lingual retrieval), against zero-
# and mean-ablating the layer? The SAE replaces the layer at content tokens only (special tokens keep their
# activations). First the three shipped SAEs (`data/saes`: trained on the general-domain corpus, seeds 0, 1, 2), whose
# spread gives an interval, and the splice verdict (docs/verdicts.md): the spliced model's cosine to the clean one
# against the SAE with its decoder rows shuffled (the null) and beyond untrained SAEs of the same width and L0 (the
# baseline that can win: the top k of many random directions already rebuild much of an input); then over width and
# k, SAEs trained on a slice of LibreOffice's help (never on the sentences scored), with the pipeline's fidelity
# step. About 4 minutes on CPU.
#
# *In context:* Scaling Monosemanticity and Gao et al. express this cost as the compute a model would need to
# reach the spliced model's loss (the former: its SAEs' reconstruction is worth roughly a model trained with ~10×
# less compute). That needs a family of language models trained at several compute budgets. For an encoder
# without such a family we report the fraction of clean performance recovered instead: the same question in
# units we can measure.

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import mmfeatures as mmf
from mmfeatures import plotting, widgets
from mmfeatures.pipeline import ExtractStep, FidelityStep, check_sizes, run

# %% tags=["parameters"]
# Parameters (papermill). On a GPU with a hub model, e.g.:
#   model = 'hf:intfloat/multilingual-e5-base'       (GPU; any transformers text encoder)
#   model = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'  (then site = 'text.layer.8.resid')
model = 'offline:e5-small'
site = 'text.layer.8.resid'
shipped = ['data:e5-small-layer8-seed0', 'data:e5-small-layer8-seed1', 'data:e5-small-layer8-seed2']
train_data = 'libreoffice:300'       # the sweep's training text (about 80,000 tokens)
widths = [768, 1536, 3072]
k_values = [8, 16, 32]
languages = ['en', 'es', 'ja', 'sw']
epochs = 3
seed = 0

# %%
check_sizes(epochs=(epochs, 1))
sentences = run(ExtractStep(model=model, sites=(site,), progress=False)).store(site)   # mean-ablation's mean
seeds = run(FidelityStep(saes=tuple(shipped), store=str(sentences.path), seeds=True,
                         names=tuple(f'seed {i}' for i in range(len(shipped))), languages=tuple(languages), out=None))
print(seeds.verdict)
print(seeds.tables[0]['title'])
display(pd.DataFrame(seeds.tables[0]['rows'], columns=seeds.tables[0]['columns']).set_index('sae'))

# %%
store = run(ExtractStep(model=model, sites=(site,), data=train_data, progress=False)).store(site)
base = dict(seed=seed, batch_size=2048, epochs=epochs)
configs = {**{f'w{w}-k16': mmf.TrainConfig(mmf.TopK(k=16), w, **base) for w in widths},
           **{f'w1536-k{k}': mmf.TrainConfig(mmf.TopK(k=k), 1536, **base) for k in k_values if k != 16}}
trained = mmf.train(store, list(configs.values()), progress=False)     # one pass over the store for all five
spliced = run(FidelityStep(saes=tuple(str(t.folder) for t in trained), names=tuple(configs),
                           languages=tuple(languages), out=None))
table = pd.DataFrame(spliced.tables[0]['rows'], columns=spliced.tables[0]['columns']).set_index('sae')
print(spliced.tables[0]['title'])
table.round(3)

# %%
by_width = table.loc[[f'w{w}-k16' for w in widths]]
by_k = table.loc[[f'w1536-k{k}' for k in k_values]]
metrics = ('cosine', 'retrieval', 'crosslingual')
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4), constrained_layout=True)
plotting.curves({m: dict(zip(widths, by_width[f'recovered_{m}_vs_zero'], strict=True)) for m in metrics},
                xlabel='SAE width (k = 16)', ylabel='fraction recovered vs zero-ablation',
                title='Fraction of clean behaviour recovered, over width', xscale='log', ax=a)
plotting.curves({m: dict(zip(k_values, by_k[f'recovered_{m}_vs_zero'], strict=True)) for m in metrics},
                xlabel='k (width 1536)', ylabel='fraction recovered vs zero-ablation',
                title='Fraction of clean behaviour recovered, over k', ax=b)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
rec = table['recovered_retrieval_vs_zero']
print(f'every SAE recovers > 50% of concept retrieval vs zero-ablation: {bool((rec > 0.5).all())}')
print('the spliced model stays below the clean one (cosine < 1):', bool((table['cosine'] < 1).all()))
print('larger k recovers more retrieval:', bool(by_k['recovered_retrieval_vs_zero'].iloc[-1] > by_k['recovered_retrieval_vs_zero'].iloc[0]))
shipped_rec = [row[seeds.tables[0]['columns'].index('recovered_retrieval_vs_zero')] for row in seeds.tables[0]['rows'][:-1]]
print(f'shipped SAEs, every seed recovers > 50% of concept retrieval vs zero-ablation: {min(shipped_rec) > 0.5}')
print('splice verdict, shipped SAEs:', seeds.status)

# %% [markdown]
# Pick a metric: the fraction of the clean model's score that the spliced SAE recovers, measured against zero-
# and against mean-ablation, over width (k = 16).

# %%
recovered = {m: {f'vs {baseline}-ablation': dict(zip(widths, by_width[f'recovered_{m}_vs_{baseline}'], strict=True))
                 for baseline in ('zero', 'mean')} for m in metrics}
widgets.curve_picker(recovered, xlabel='SAE width (k = 16)', ylabel='fraction of clean score recovered',
                     title='Spliced SAE, over width', xscale='log')
