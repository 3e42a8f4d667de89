# %% [markdown]
# # 04 · Multimodal features on `offline:e5-emoji-clip`
#
# `offline:e5-emoji-clip` is e5-small's text tower plus a small image tower that this project trained on emoji
# renders (a teaching model, not a CLIP; see `data/models/README.md`). A TopK SAE is trained on the shared
# space's **text** embeddings only (emoji names), then encodes pictures too. The ModalityScore histogram shows
# how features split between modalities; bridge features fire on a concept's picture and its names. The browser
# shows one feature's top images and top texts. About 2 minutes on CPU.

# %%
import numpy as np

import mmfeatures as mmf
from mmfeatures import plotting, widgets
from mmfeatures.analysis import Labels, crossmodal, unit_activations
from mmfeatures.analysis.labels import encode_rows
from mmfeatures.recipes import cached_sae, check_sizes

# %% tags=["parameters"]
# Parameters (papermill). On a GPU with hub access, e.g.:
#   model = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'   (a real multilingual CLIP)
model = 'offline:e5-emoji-clip'
languages = ['en', 'es', 'ru', 'ar', 'ja', 'zh']
width, k = 1024, 8
epochs = 30
n_perm = 20
feature = None    # None: the strongest bridge feature
seed = 0

# %%
check_sizes(n_perm=(n_perm, 5), width=(width, 32), epochs=(epochs, 1))
enc = mmf.load_encoder(model)
full = mmf.ConceptDataset.builtin(['emoji'], linked_only=False)   # all 1,397 emoji, not only those linked to sentences
emoji = mmf.ConceptDataset.from_examples([e for e in full if e.modality == mmf.Modality.IMAGE or e.language in languages],
                                         full.categories, name='emoji')
result = mmf.extract(enc, emoji, ['image.embed', 'text.embed'], progress=False)
img_store, txt_store = result.stores['image.embed'], result.stores['text.embed']
sae = cached_sae(txt_store, mmf.TrainConfig(mmf.TopK(k=k), width, seed=seed, lr=3e-3, warmup_steps=20,
                                            batch_size=1024, dead_tokens=50_000, device='cpu'), epochs=epochs)

(x_img, l_img), (x_txt, l_txt) = unit_activations(img_store), unit_activations(txt_store)
labels = Labels.concat(l_img, l_txt)
z = encode_rows(sae, np.concatenate([x_img, x_txt]))
print(f'{len(x_img)} emoji pictures, {len(x_txt)} names in {len(languages)} languages; SAE {width} features, k={k}')

# %%
cm = crossmodal(z, labels, n_perm=n_perm, seed=seed)
counts, edges = cm.histogram()
fig = plotting.modality_histogram(counts, edges, title='ModalityScore of SAE features learnt from text only')
cm.table().round(3)

# %%
# NBVAL_CHECK_OUTPUT
mm = cm.scores['multimodal']
print(f'multimodal fraction {mm.value:.1f} (null {mm.null_mean:.1f}); above null: {mm.value > mm.null_mean + 3 * mm.null_sd}')
print('some bridge features exist:', bool(cm.bridge.sum() > 0))

# %%
pictures = {e.id: e.content for e in emoji if e.modality == mmf.Modality.IMAGE}
names = {e.id: e.content for e in emoji if e.modality == mmf.Modality.TEXT}
bridges = np.flatnonzero(cm.bridge)
start = feature if feature is not None else int(bridges[np.argmax(z[:, bridges].max(0))]) if len(bridges) else 0
widgets.feature_browser(z, labels, pictures, names, feature=start, languages=languages)
