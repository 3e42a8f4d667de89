# %% [markdown]
# # 04 · Multimodal features on `offline:e5-emoji-clip`
#
# `offline:e5-emoji-clip` is e5-small's text tower plus a small image tower that this project trained on emoji
# renders (a teaching model, not a CLIP; see `data/models/README.md`). A TopK SAE is trained on the shared
# space's **text** embeddings only (emoji names), then encodes pictures too. The pipeline's cross-modal analysis
# scores how features split between modalities (the ModalityScore histogram) and how many are bridge features,
# firing on a concept's picture and its names, each against a null. The browser shows one feature's top images
# and top texts. About 2 minutes on CPU.

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
languages = ['en', 'es', 'ru', 'ar', 'ja', 'zh']
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
trained = run(TrainStep(store=str(txt_store.path), width=width, k=k, epochs=epochs, batch_size=1024, seed=seed,
                        progress=False))
analyzed = run(AnalyzeStep(stores=(str(img_store.path), str(txt_store.path)), sae=trained.artifact('sae').path,
                           kind='crossmodal', n_perm=n_perm, seed=seed, out=tempfile.mkdtemp(prefix='mmf-04-')))
print(f'{img_store.n_rows} emoji pictures, {txt_store.n_rows} names in {len(languages)} languages; '
      f'SAE {width} features, k={k}')
print(analyzed.verdict)

# %%
for figure in analyzed.figures:
    display(Image(filename=str(Path(analyzed.folder) / figure['file'])))
pd.DataFrame(analyzed.scores).set_index('metric').round(3)

# %%
# NBVAL_CHECK_OUTPUT
mm, bridge = (next(row for row in analyzed.scores if row['metric'] == name)
              for name in ('multimodal fraction', 'bridge-feature fraction'))
print(f"multimodal fraction {mm['value']:.1f} (null {mm['null_mean']:.1f}); above null: "
      f"{mm['value'] > mm['null_mean'] + 3 * mm['null_sd']}")
print('some bridge features exist:', bridge['value'] > 0)

# %% [markdown]
# The browser encodes the pictures and the names with the same SAE (one row per emoji picture, one per name).
# It starts on the first bridge feature of the table below.

# %%
table = analyzed.tables[0]
display(pd.DataFrame(table['rows'], columns=table['columns']))
(x_img, l_img), (x_txt, l_txt) = unit_activations(img_store), unit_activations(txt_store)
labels = Labels.concat(l_img, l_txt)
z = encode_rows(trained.sae(), np.concatenate([x_img, x_txt]))
emoji = mmf.ConceptDataset.builtin(['emoji'], languages=languages, linked_only=False)
pictures = {e.id: e.content for e in emoji if e.modality == mmf.Modality.IMAGE}
names = {e.id: e.content for e in emoji if e.modality == mmf.Modality.TEXT}
start = feature if feature is not None else int(table['rows'][0][0][1:]) if table['rows'] else 0  # 'f12' -> 12
widgets.feature_browser(z, labels, pictures, names, feature=start, languages=languages)
