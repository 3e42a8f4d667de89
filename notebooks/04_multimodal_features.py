# %% [markdown]
# # 04 · Multimodal features on `offline:e5-emoji-clip`
#
# `offline:e5-emoji-clip` is e5-small's text tower plus a small image tower that this project trained on emoji
# renders (a teaching model, not a CLIP; see `data/models/README.md`). TopK SAEs (three seeds) are trained on the
# shared space's **text** embeddings only (emoji names), then encode pictures too. The pipeline's cross-modal
# verdict (docs/verdicts.md) scores how features split between modalities (the ModalityScore histogram) and how
# many are multimodal and bridge features, firing on a concept's picture and its names: each against a null (the
# pictures' concepts shuffled) and beyond random directions of the same width and L0, with an interval over concepts
# and the three seeds and the smallest effect it detects with 80% power.
#
# Which pictures count: the image tower was trained to map the seen emoji onto their names, so on those a
# bridge is the training objective restated (a fit check only). The evidence is **Tux Paint's stamps** (pictures
# and captions that neither the SAE nor the image tower saw) and **the held-out emoji** (pictures the tower never
# saw; their names did train the SAE). The browser shows one feature's top images and top texts. About 3 minutes
# on CPU.

# %%
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Image, display

import mmfeatures as mmf
from mmfeatures import widgets
from mmfeatures.analysis import Labels, unit_activations
from mmfeatures.analysis.labels import encode_rows
from mmfeatures.pipeline import AnalyzeStep, ExtractStep, TrainStep, check_sizes, run

# %% tags=["parameters"]
# Parameters (papermill). On a GPU with hub access, e.g.:
#   model = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'   (a real multilingual CLIP)
model = 'offline:e5-emoji-clip'
languages = ['en', 'es', 'de', 'ru', 'ja', 'zh']     # the quick demo's, so the stores and SAEs are shared
width, k = 1024, 8
epochs = 30
n_perm = 20
feature = None    # None: the first bridge feature of the analysis table (the most concept-selective)
seed = 0

# %%
check_sizes(n_perm=(n_perm, 19), width=(width, 32), epochs=(epochs, 1))
sites = ('image.embed', 'text.embed')
# all 1,397 emoji (not only those linked to sentences), with their names in `languages`
extracted = run(ExtractStep(model=model, sites=sites, data='emoji', languages=tuple(languages), pooling='mean',
                            progress=False))
img_store, txt_store = (extracted.store(site) for site in sites)
stamps = run(ExtractStep(model=model, sites=sites, data='tuxpaint', languages=tuple(languages), pooling='mean',
                         progress=False))
trained = [run(TrainStep(store=str(txt_store.path), width=width, k=k, epochs=epochs, batch_size=1024, seed=seed + s,
                         progress=False)) for s in range(3)]
saes = [t.artifact('sae').path for t in trained]


def analyze(stores, subset, label):
    return run(AnalyzeStep(stores=tuple(str(st.path) for st in stores), sae=saes[0], seeds=tuple(saes[1:]),
                           kind='crossmodal', subset=subset, label=label, n_perm=n_perm, seed=seed,
                           out=tempfile.mkdtemp(prefix='mmf-04-')))


words = run(ExtractStep(model=model, sites=('text.embed',), data='freedict', pooling='mean', progress=False))
analyses = {'Tux Paint (held out)': analyze([stamps.store(s) for s in sites], 'all', 'Tux Paint stamps'),
            'Tux Paint pictures, FreeDict words': run(AnalyzeStep(
                stores=(str(stamps.store('image.embed').path), str(words.store('text.embed').path)), sae=saes[0],
                seeds=tuple(saes[1:]), kind='crossmodal', ids='^(tuxpaint/.*/image|freedict/)',
                label='Tux Paint pictures, FreeDict words', n_perm=n_perm, seed=seed, out=None)),
            'held-out emoji': analyze([img_store, txt_store], 'heldout-emoji', 'held-out emoji'),
            'seen emoji (fit check)': analyze([img_store, txt_store], 'seen-emoji', 'fit check: seen emoji')}
analyzed = analyses['Tux Paint (held out)']
print(f'{img_store.n_rows} emoji pictures, {txt_store.n_rows} names in {len(languages)} languages; '
      f'{stamps.store("image.embed").n_rows} Tux Paint pictures, {stamps.store("text.embed").n_rows} captions; '
      f'SAEs of {width} features, k={k}, seeds {seed}..{seed + 2}')
for name, a in analyses.items():
    print(f'{name}: {a.verdict}\n')

# %%
for figure in analyzed.figures:
    display(Image(filename=str(Path(analyzed.folder) / figure['file'])))
pd.DataFrame([{'pictures': name, **{k: t[k] for k in ('test', 'value', 'null_mean', 'p_value', 'baseline', 'effect',
                                                      'low', 'high')}, 'detects (80% power)': t['power']['mde']}
              for name, a in analyses.items() for t in a.tests]).set_index('pictures').round(4)

# %%
# NBVAL_CHECK_OUTPUT
for name, a in analyses.items():
    mm = a.tests[0]
    print(f"{name}: multimodal fraction above its null: {mm['value'] > mm['null_mean']}; verdict: {a.status}")

# %% [markdown]
# **Measured (6 languages, 19 permutations, three SAE seeds): on pictures that nothing here was trained on, the
# cross-modal effect is at the edge of what this sample can see.** On Tux Paint's stamps 0.7% of the features are
# multimodal against 0.3% with the pictures' concepts shuffled; beyond random directions the effect is 0.009
# (interval 0.006 to 0.014), under the declared floor of 0.01, and the test detects 0.013 with 80% power:
# *inconclusive at this sample size*. The bridge fraction passes (0.037 against 0.022 shuffled). With FreeDict's
# words in place of the captions no feature is multimodal and no planted effect is detected in 80% of simulations
# (few concepts have both a picture and a word): inconclusive, never "not supported". On the held-out emoji
# (near-duplicates of seen ones left out) 1.2% against 0.2%, effect 0.011 (interval 0.007 to 0.016): supported. On
# the seen emoji, the fit check, 28.4%: the image tower's training objective restated, which earlier versions of
# this notebook pooled into the headline.
#
# The browser encodes the emoji pictures and names with the seed-0 SAE (one row per picture, one per name). It
# starts on the first bridge feature of the fit check's table below (bridges on seen emoji are the easiest to see,
# and also the least informative).

# %%
table = analyses['seen emoji (fit check)'].tables[0]
display(pd.DataFrame(table['rows'], columns=table['columns']))
(x_img, l_img), (x_txt, l_txt) = unit_activations(img_store), unit_activations(txt_store)
labels = Labels.concat(l_img, l_txt)
z = encode_rows(trained[0].sae(), np.concatenate([x_img, x_txt]))
emoji = mmf.ConceptDataset.builtin(['emoji'], languages=languages, linked_only=False)
pictures = {e.id: e.content for e in emoji if e.modality == mmf.Modality.IMAGE}
names = {e.id: e.content for e in emoji if e.modality == mmf.Modality.TEXT}
start = feature if feature is not None else int(table['rows'][0][0][1:]) if table['rows'] else 0  # 'f12' -> 12
widgets.feature_browser(z, labels, pictures, names, feature=start, languages=languages)
