"""Writes notebooks 01-08 (cells only); `make notebooks` executes them in place so outputs are stored.

Each notebook: a `parameters` cell (papermill) naming hub alternatives, a guard on its sizes, real
models and data, figures through mmfeatures.plotting, a widget from mmfeatures.widgets, and cells tagged
NBVAL_CHECK_OUTPUT that print a key result as booleans or rounded numbers so that nbval fails on a
regression in the science.
"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell


def params(text: str):
    return code(text.strip(), metadata={"tags": ["parameters"]})


def check(text: str):
    return code("# NBVAL_CHECK_OUTPUT\n" + text.strip())


E5_HUB = ("#   MODEL = 'hf:intfloat/multilingual-e5-base'       (GPU; any transformers text encoder)\n"
          "#   MODEL = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'  (then SITE = 'text.layer.8.resid')\n")

E5_HEAD = ("# Parameters (papermill). On a GPU with a hub model, e.g.:\n" + E5_HUB +
           "MODEL = 'offline:e5-small'\nSITE = 'text.layer.8.resid'")

NOTEBOOKS = {}

NOTEBOOKS["01_toy_superposition"] = [
    md("# 01 · Toy models of superposition (Elhage et al. 2022)\n\n"
       "A ReLU output model x' = ReLU(WᵀWx + b) squeezes n sparse features into m < n dimensions. Dense "
       "features: the model keeps the m most important ones, orthogonal, and drops the rest. Sparse features: "
       "it stores *more features than dimensions*, in superposition (5 in 2: a pentagon). Many features: the "
       "dimensions per feature D* fall with sparsity and stick at 1/2. Takes about a minute on CPU."),
    params("""
# Parameters (papermill). These are toy models: no hub model is involved; on a GPU set DEVICE = 'cuda'.
N_FEATURES, N_HIDDEN, DECAY, STEPS = 5, 2, 0.9, 6000
SPARSITIES = [0.0, 0.5, 0.8, 0.9, 0.95, 0.99]
BIG_FEATURES, BIG_HIDDEN, BIG_STEPS, BIG_LEVELS = 80, 8, 2500, 20
DEVICE = 'cpu'
SEED = 0
"""),
    code("""
import matplotlib.pyplot as plt
import numpy as np

from mmfeatures import plotting, widgets
from mmfeatures.recipes import check_sizes
from mmfeatures.toy import ToyConfig, dimensions_per_feature, feature_dimensionality, train_toy

check_sizes(N_FEATURES=(N_FEATURES, 3), STEPS=(STEPS, 500), BIG_LEVELS=(BIG_LEVELS, 4))
small = train_toy(ToyConfig(n_features=N_FEATURES, n_hidden=N_HIDDEN, importance_decay=DECAY, steps=STEPS,
                            seed=SEED, device=DEVICE), SPARSITIES)
fig, axes = plt.subplots(1, len(SPARSITIES), figsize=(2.3 * len(SPARSITIES), 2.6), constrained_layout=True)
for ax, s, W in zip(axes, SPARSITIES, small.W):
    plotting.toy_geometry(W, small.importance, title=f'S = {s}', ax=ax)
fig.suptitle('Sparser features: from 2 orthogonal features to 5 in a pentagon (arrows: W_i)');
print('feature norms |W_i| per sparsity:'); print(np.linalg.norm(small.W, axis=1).round(2))
"""),
    md("Move the slider: each position is a model trained at that sparsity."),
    code("widgets.toy_geometry(dict(zip(SPARSITIES, small.W)), small.importance)"),
    check("""
def pentagon(W):
    norms = np.linalg.norm(W, axis=0)
    angles = np.sort(np.degrees(np.arctan2(W[1], W[0]))[norms > 0.5])
    gaps = np.diff(np.r_[angles, angles[0] + 360]) if len(angles) else np.array([])
    return len(gaps) == 5 and bool(np.abs(gaps - 72).max() < 12)

dense = np.linalg.norm(small.W[0], axis=0)
cos = small.W[0][:, 0] @ small.W[0][:, 1] / (dense[0] * dense[1])
print('dense: the 2 most important features kept, orthogonal, the rest dropped:',
      bool(dense[:2].min() > 0.9 and dense[2:].max() < 0.5 and abs(cos) < 0.1))
print(f'S = {SPARSITIES[-1]}: all 5 features stored, as a pentagon:', pentagon(small.W[-1]))
"""),
    md("## Many features: D* = m / ‖W‖²_F, and each feature's D_i\n\n"
       "Uniform importance; feature probability 1 − S from 1 down to about 0.003."),
    code("""
sparsities = 1 - np.logspace(0, -2.5, BIG_LEVELS)
big = train_toy(ToyConfig(n_features=BIG_FEATURES, n_hidden=BIG_HIDDEN, steps=BIG_STEPS, batch_size=512, seed=SEED,
                          device=DEVICE), list(sparsities))
d_star = dimensions_per_feature(big.W)
d_i = feature_dimensionality(big.W)
alive = np.linalg.norm(big.W, axis=1) > 0.5
plotting.dimensionality(sparsities, d_star, d_i, alive);
"""),
    check("""
print('D* near 1 when dense:', bool(d_star[0] > 0.9), '| below 0.2 when very sparse:', bool(d_star[-1] < 0.2))
print('D* decreases with sparsity:', bool(np.all(np.diff(d_star) < 0.05)))
near_half = np.abs(d_star - 0.5) < 0.05
print('D* sticks near 1/2 on consecutive sparsity levels:', bool(np.any(near_half[:-1] & near_half[1:])))
clusters = {f: int((np.abs(d_i[alive] - f) < 0.02).sum()) for f in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8)}
print('features cluster at D_i = 1/2 and at 2/5 (>= 10 each):', clusters[1 / 2] >= 10 and clusters[2 / 5] >= 10)
"""),
    md("With more features (n = 200, m = 20) the plateau is wider and more D_i fractions appear: "
       "`tests/test_toy.py::test_many_features_plateau_at_half_a_dimension` (marked slow) checks that case."),
]

COMMON = """
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import mmfeatures as mmf
from mmfeatures import plotting, widgets
from mmfeatures.analysis import unit_activations
from mmfeatures.recipes import cached_sae, cached_saes, check_sizes, concept_dataset, concept_store
"""

NOTEBOOKS["02_train_and_evaluate_saes"] = [
    md("# 02 · Training and evaluating SAEs: the NMSE–L0 frontier, dead latents, feature density\n\n"
       "SAEs of four architectures on e5-small's layer-8 token activations of the built-in sentences "
       "(123 concepts × 16 languages). Each is scored on held-out rows: normalised MSE against L0. Then the "
       "AuxK loss's effect on dead latents (Gao et al. 2024), and how often each feature fires. About 2 "
       "minutes on CPU (the stores and SAEs are cached for the other notebooks)."),
    params(E5_HEAD + """
WIDTH = 1536
K_VALUES = [8, 16, 32]
L1_VALUES = [2.0, 5.0]
EPOCHS = 2
SEED = 0
"""),
    code(COMMON + """
import torch

check_sizes(WIDTH=(WIDTH, 64), EPOCHS=(EPOCHS, 1))
store = concept_store(MODEL, SITE)
x = store.rows(np.arange(store.n_rows))
held = torch.from_numpy(np.random.default_rng(SEED).random(store.n_rows) < 0.1)  # scored rows
print(store)
"""),
    code("""
base = dict(seed=SEED, lr=3e-3, warmup_steps=20, batch_size=2048, device='cpu')
configs = ([mmf.TrainConfig(mmf.TopK(k=k), WIDTH, name=f'topk-{k}', **base) for k in K_VALUES]
           + [mmf.TrainConfig(mmf.BatchTopK(k=16), WIDTH, name='batchtopk-16', **base)]
           + [mmf.TrainConfig(mmf.ReLU(l1_coefficient=c), WIDTH, name=f'relu-l1-{c}', **base) for c in L1_VALUES]
           # a wide, very sparse pair for dead latents: AuxK on (the default) and off
           + [mmf.TrainConfig(mmf.TopK(k=4, aux_coefficient=a), 4 * WIDTH, dead_tokens=10_000, name=name, **base)
              for a, name in ((1 / 32, 'wide-topk-4'), (0.0, 'wide-topk-4-no-auxk'))])
saes = dict(zip([c.name for c in configs], cached_saes(store, configs, epochs=EPOCHS)))

def evaluate(sae, rows):
    with torch.no_grad():
        z = sae.encode(rows)
        z = z.to_dense() if z.is_sparse else z
        err = (sae.decode(z) - rows).pow(2).sum() / (rows - rows.mean(0)).pow(2).sum()
        fired = (sae.encode(x) != 0)
        fired = fired.to_dense() if fired.is_sparse else fired
    return {'nmse': float(err), 'l0': float((z != 0).sum(1).float().mean()),
            'dead': float((fired.sum(0) == 0).float().mean()), 'density': fired.float().mean(0).numpy()}

scores = {name: evaluate(sae, x[held]) for name, sae in saes.items()}
pd.DataFrame({n: {k: v for k, v in s.items() if k != 'density'} for n, s in scores.items()}).T.round(3)
"""),
    code("""
frontier = {arch: {s['l0']: s['nmse'] for n, s in scores.items() if n.startswith(arch + '-')}
            for arch in ('topk', 'batchtopk', 'relu-l1')}
fig = plotting.curves(frontier, xlabel='L0 (active latents per token)', ylabel='NMSE on held-out rows',
                      title='More active latents buy lower reconstruction error')
fig.axes[0].set_xscale('log')
"""),
    check("""
topk = [scores[f'topk-{k}']['nmse'] for k in K_VALUES]
print('TopK NMSE falls as k grows:', bool(np.all(np.diff(topk) < 0)))
print('every SAE reconstructs better than the mean (NMSE < 1):', all(s['nmse'] < 1 for s in scores.values()))
with_aux, without = scores['wide-topk-4']['dead'], scores['wide-topk-4-no-auxk']['dead']
print(f'dead fraction (never fires on the store), TopK k=4 x {4 * WIDTH}: with AuxK {with_aux:.1f}, without {without:.1f}')
"""),
    md("**Dead latents, measured as they came out.** Gao et al. report that AuxK keeps dead latents near zero "
       "in long runs. In this short CPU run, the wide, very sparse SAE has *more* latents that never fire "
       "with AuxK than without (the check above; 8 epochs gave the same). That is not evidence against AuxK "
       "at scale. But it is not the paper's effect either, and it is an open question in the project "
       "(see the README's status). Change `EPOCHS` to look at longer runs."),
    code("""
dens = {name: np.log10(scores[name]['density'][scores[name]['density'] > 0]) for name in ['topk-16', 'relu-l1-5.0']}
plotting.distributions(dens, xlabel='log10 firing frequency', range_=(-5, 0),
                       title='Feature density: how often each latent fires (dead latents left out)');
"""),
]

NOTEBOOKS["03_multilingual_features"] = [
    md("# 03 · Multilingual features: one concept, sixteen languages\n\n"
       "A TopK SAE on e5-small's layer 8 (the built-in sentences: 123 concepts, 16 languages). Pick a concept "
       "and languages: the heatmap shows the concept's strongest features in each language. A multilingual "
       "feature lights up its whole column. Below: each feature's language entropy against a shuffled-language "
       "null, and examples of multilingual and language-specific features. About a minute on CPU."),
    params(E5_HEAD + """
WIDTH, K = 1536, 16
CONCEPT = 'dog'
N_PERM = 20
SEED = 0
"""),
    code(COMMON + """
from mmfeatures.analysis import crosslingual, language_entropy
from mmfeatures.analysis.stats import permuted

check_sizes(N_PERM=(N_PERM, 5), WIDTH=(WIDTH, 64))
store = concept_store(MODEL, SITE)
sae = cached_sae(store, mmf.TrainConfig(mmf.TopK(k=K), WIDTH, seed=SEED, lr=3e-3, warmup_steps=20, batch_size=2048,
                                        dead_tokens=100_000, device='cpu'))
z, labels = unit_activations(store, sae)          # max over each sentence's tokens
texts = {e.id: e.content for e in concept_dataset()}
print(z.shape, 'sentences x features')
"""),
    code("panel = widgets.concept_heatmap(z, labels, concept=CONCEPT)\npanel"),
    code("""
cl = crosslingual(z, labels, n_perm=N_PERM, seed=SEED)
null_entropy = language_entropy(z, permuted(labels, 'language', np.random.default_rng(SEED)))
plotting.distributions({'SAE features': cl.entropy[cl.alive], 'languages shuffled (null)': null_entropy[cl.alive]},
                       xlabel='normalised language entropy (1 = spread evenly over all 16 languages)', range_=(0, 1),
                       title='Language entropy of features against a language-blind null');
cl.table().round(3)
"""),
    check("""
s = cl.scores['multilingual']
print(f"multilingual fraction {s.value:.1f} above its null {s.null_mean:.1f}: {s.value > s.null_mean + 3 * s.null_sd}")
row = panel.state['matrix'][:, 0]
print(f"'{CONCEPT}' top feature fires in >= 12 of {len(row)} languages: {bool((row > 0).sum() >= 12)}")
"""),
    code("""
def show(feature, n=6):
    order = np.argsort(-z[:, feature])[:n]
    return pd.DataFrame({'activation': z[order, feature].round(2), 'language': labels.language[order],
                         'sentence': [texts[labels.example_id[i]] for i in order]})

multi = int(np.argmax(np.where(cl.multilingual, cl.concept_auroc, -1)))   # the most concept-selective one
specific = int(np.nanargmin(np.where(cl.alive, cl.entropy, np.nan)))
print('a multilingual feature:', multi); display(show(multi))
print('a language-specific feature:', specific); display(show(specific))
"""),
]

NOTEBOOKS["04_multimodal_features"] = [
    md("# 04 · Multimodal features on `offline:e5-emoji-clip`\n\n"
       "`offline:e5-emoji-clip` is e5-small's text tower plus a small image tower that this project trained "
       "on emoji renders (a teaching model, not a CLIP; see `data/models/README.md`). A TopK SAE is trained "
       "on the shared space's **text** embeddings only (emoji names), then encodes pictures too. The "
       "ModalityScore histogram shows how features split between modalities; bridge features fire on a "
       "concept's picture and its names. The browser shows one feature's top images and top texts. About "
       "2 minutes on CPU."),
    params("""
# Parameters (papermill). On a GPU with hub access, e.g.:
#   MODEL = 'openclip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k'   (a real multilingual CLIP)
MODEL = 'offline:e5-emoji-clip'
LANGUAGES = ['en', 'es', 'ru', 'ar', 'ja', 'zh']
WIDTH, K = 1024, 8
EPOCHS = 30
N_PERM = 20
FEATURE = None    # None: the strongest bridge feature
SEED = 0
"""),
    code(COMMON + """
from mmfeatures.analysis import Labels, crossmodal
from mmfeatures.analysis.labels import encode_rows

check_sizes(N_PERM=(N_PERM, 5), WIDTH=(WIDTH, 32), EPOCHS=(EPOCHS, 1))
enc = mmf.load_encoder(MODEL)
full = mmf.ConceptDataset.builtin(['emoji'], linked_only=False)   # all 1,397 emoji, not only those linked to sentences
emoji = mmf.ConceptDataset.from_examples([e for e in full if e.modality == mmf.Modality.IMAGE or e.language in LANGUAGES],
                                         full.categories, name='emoji')
result = mmf.extract(enc, emoji, ['image.embed', 'text.embed'], progress=False)
img_store, txt_store = result.stores['image.embed'], result.stores['text.embed']
sae = cached_sae(txt_store, mmf.TrainConfig(mmf.TopK(k=K), WIDTH, seed=SEED, lr=3e-3, warmup_steps=20,
                                            batch_size=1024, dead_tokens=50_000, device='cpu'), epochs=EPOCHS)

(x_img, l_img), (x_txt, l_txt) = unit_activations(img_store), unit_activations(txt_store)
labels = Labels.concat(l_img, l_txt)
z = encode_rows(sae, np.concatenate([x_img, x_txt]))
print(f'{len(x_img)} emoji pictures, {len(x_txt)} names in {len(LANGUAGES)} languages; SAE {WIDTH} features, k={K}')
"""),
    code("""
cm = crossmodal(z, labels, n_perm=N_PERM, seed=SEED)
counts, edges = cm.histogram()
plotting.modality_histogram(counts, edges, title='ModalityScore of SAE features learnt from text only');
cm.table().round(3)
"""),
    check("""
mm = cm.scores['multimodal']
print(f'multimodal fraction {mm.value:.1f} (null {mm.null_mean:.1f}); above null: {mm.value > mm.null_mean + 3 * mm.null_sd}')
print('some bridge features exist:', bool(cm.bridge.sum() > 0))
"""),
    code("""
pictures = {e.id: e.content for e in emoji if e.modality == mmf.Modality.IMAGE}
names = {e.id: e.content for e in emoji if e.modality == mmf.Modality.TEXT}
bridges = np.flatnonzero(cm.bridge)
feature = FEATURE if FEATURE is not None else int(bridges[np.argmax(z[:, bridges].max(0))]) if len(bridges) else 0
widgets.feature_browser(z, labels, pictures, names, feature=feature, languages=LANGUAGES)
"""),
]

NOTEBOOKS["05_cross_model_matching"] = [
    md("# 05 · The same features across models\n\n"
       "Match units on activation correlation over the same inputs (Towards Monosemanticity; Lan et al. "
       "2024). Two SAEs that differ only in their seed, on e5-small's layer 8 tokens; then e5-small's neurons "
       "against e5-small-enpt (related) and MiniLM (unrelated) on pooled sentences. Every distribution sits "
       "next to a permuted-rows null. The explorer shows a feature's match, a scatter and both top sentences. "
       "About 2 minutes on CPU."),
    params(f"""
# Parameters (papermill). On a GPU with hub models, e.g. MODEL_B = 'hf:intfloat/multilingual-e5-base':
{E5_HUB}MODEL = 'offline:e5-small'
MODEL_RELATED, MODEL_UNRELATED = 'offline:e5-small-enpt', 'offline:minilm-l6'
SITE = 'text.layer.8.resid'
WIDTH, K = 1536, 16
SEED_A, SEED_B = 0, 1
SEED = 0
"""),
    code(COMMON + """
from mmfeatures.analysis.labels import encode_rows
from mmfeatures.analysis.matching import StreamingCorrelation, max_correlation

store = concept_store(MODEL, SITE)
base = dict(lr=3e-3, warmup_steps=20, batch_size=2048, dead_tokens=100_000, device='cpu')
sae_a = cached_sae(store, mmf.TrainConfig(mmf.TopK(k=K), WIDTH, seed=SEED_A, **base))
sae_b = cached_sae(store, mmf.TrainConfig(mmf.TopK(k=K), WIDTH, seed=SEED_B, **base))
x = store.array()
za, zb = encode_rows(sae_a, x), encode_rows(sae_b, x)
def best_match(a, b):
    # each A unit's best correlation with any B unit, and that unit (streamed; dead units get 0)
    acc = StreamingCorrelation(a.shape[1], b.shape[1])
    for start in range(0, len(a), 16384):
        acc.update(a[start:start + 16384], b[start:start + 16384])
    values, index = acc.topm(1)
    return values[:, 0].numpy(), index[:, 0].numpy()

best, match = best_match(za, zb)
null, _ = best_match(za, zb[np.random.default_rng(SEED).permutation(len(zb))])
alive = (za > 0).sum(0) >= 10
print(f'{store.n_rows} token rows; {alive.sum()} of {WIDTH} features fire on >= 10 tokens')
"""),
    code("""
def pooled(model, layer):
    return concept_store(model, f'text.layer.{layer}.resid', pooling='mean').array()

e5, related, unrelated = pooled(MODEL, 8), pooled(MODEL_RELATED, 8), pooled(MODEL_UNRELATED, 4)
perm = np.random.default_rng(SEED).permutation(len(e5))
groups = {'SAE features, seed A vs B': best[alive], 'features, permuted rows (null)': null[alive],
          'neurons, e5 vs e5-enpt': max_correlation(e5, related), 'neurons, e5 vs MiniLM': max_correlation(e5, unrelated),
          'neurons, e5 vs MiniLM, permuted (null)': max_correlation(e5, unrelated[perm])}
plotting.distributions(groups, xlabel='max correlation with any unit of the other model', range_=(0, 1),
                       title='Features recur across seeds; neurons across related models');
"""),
    check("""
med = {k: float(np.median(v)) for k, v in groups.items()}
print(f"median max-corr, features across seeds: {med['SAE features, seed A vs B']:.1f} vs permuted null "
      f"{med['features, permuted rows (null)']:.1f}")
print('features beat the null:', med['SAE features, seed A vs B'] > med['features, permuted rows (null)'] + 0.2)
print('related model closer than unrelated:', med['neurons, e5 vs e5-enpt'] > med['neurons, e5 vs MiniLM'])
"""),
    code("""
match = np.where(alive, match, -1)
prov = store.provenance()
texts = {e.id: e.content for e in concept_dataset()}
row_text = [f"{store.examples[i]['language']}: {texts[store.examples[i]['id']][:40]} [{tok}]"
            for i, tok in zip(prov.example_index, prov.token)]
start = int(np.flatnonzero(alive & (best > 0.8))[0]) if (alive & (best > 0.8)).any() else 0
widgets.match_explorer(za, zb, match, best, row_text, names=('seed A', 'seed B'), feature=start)
"""),
]

NOTEBOOKS["06_features_vs_neurons"] = [
    md("# 06 · Are SAE features more interpretable than neurons?\n\n"
       "Towards Monosemanticity's claim, measured without a language model as judge: for every unit, how "
       "well it picks out one concept (best-concept AUROC) and how pure its top-activating sentences are "
       "(purity). Neurons (signed) against TopK SAE features of three widths, on e5-small's layer 8, each "
       "with a shuffled-concept null. About 2 minutes on CPU."),
    params(E5_HEAD + """
WIDTHS = [768, 1536, 3072]
K = 16
SEED = 0
"""),
    code(COMMON + """
from mmfeatures.analysis import interpretability

check_sizes(K=(K, 1))
store = concept_store(MODEL, SITE)
pooled = concept_store(MODEL, SITE, pooling='mean')
base = dict(seed=SEED, lr=3e-3, warmup_steps=20, batch_size=2048, dead_tokens=100_000, device='cpu')
saes = cached_saes(store, [mmf.TrainConfig(mmf.TopK(k=K), w, name=f'topk{K}-{w}', **base) for w in WIDTHS])
results = {}
z, labels = unit_activations(pooled)
results['neurons'] = interpretability(z, labels, signed=True)
for w, sae in zip(WIDTHS, saes):
    z, labels = unit_activations(store, sae)
    results[f'SAE {w}'] = interpretability(z, labels)
pd.DataFrame({k: v.summary('') for k, v in results.items()}).T.round(3)
"""),
    code("""
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
live = {k: np.isfinite(v.auroc) for k, v in results.items()}
widest = f'SAE {WIDTHS[-1]}'
plotting.distributions({**{k: v.auroc[live[k]] for k, v in results.items()},
                        f'{widest}, shuffled concepts (null)': results[widest].null_auroc},
                       xlabel='best-concept AUROC', title='Concept selectivity (AUROC)', ax=a)
plotting.distributions({**{k: v.purity[live[k]] for k, v in results.items()},
                        f'{widest}, shuffled concepts (null)': results[widest].null_purity},
                       xlabel='top-20 purity', range_=(0, 1), title='Purity of top sentences rises with SAE width', ax=b);
"""),
    check("""
purity = {k: float(np.nanmedian(v.purity[live[k]])) for k, v in results.items()}
print(f"median purity: neurons {purity['neurons']:.1f}, {widest} {purity[widest]:.1f}")
print('widest SAE purer than neurons:', purity[widest] > purity['neurons'])
print('purity rises with width:', all(purity[f'SAE {a}'] <= purity[f'SAE {b}'] + 0.02 for a, b in zip(WIDTHS, WIDTHS[1:])))
"""),
    md("Median AUROC is a different story on this model: neurons are dense and graded, so many of them rank "
       "a concept's sentences well, while a sparse feature is zero on most sentences. See "
       "`docs/results/consistency.md` for the full study across models and layers."),
]

NOTEBOOKS["07_steering"] = [
    md("# 07 · Steering by clamping a feature (a Golden-Gate analog)\n\n"
       "Scaling Monosemanticity clamped a 'Golden Gate Bridge' feature and Claude talked about the bridge. "
       "Here: find e5-small's most 'dog'-selective SAE feature at layer 8, clamp it while embedding unrelated "
       "sentences, and watch where the dog sentences land in a retrieval ranking. A random feature is the "
       "control. About 2 minutes on CPU."),
    params(E5_HEAD + """
WIDTH, K = 1536, 16
CONCEPT = 'dog'
STRENGTHS = [0, 1, 2, 3, 5]          # multiples of the feature's max activation
QUERY_CONCEPTS = ['bread', 'chair', 'river', 'school', 'red', 'five', 'freedom', 'run', 'happiness', 'village']
SEED = 0
"""),
    code(COMMON + """
from mmfeatures.analysis.stats import auroc_by_class, ranks
from mmfeatures.analysis.steering import max_activation, retrieval_curve

enc = mmf.load_encoder(MODEL)
store = concept_store(enc, SITE)
sae = cached_sae(store, mmf.TrainConfig(mmf.TopK(k=K), WIDTH, seed=SEED, lr=3e-3, warmup_steps=20, batch_size=2048,
                                        dead_tokens=100_000, device='cpu'))
z, labels = unit_activations(store, sae)
onehot, concepts = labels.onehot('concept')
if CONCEPT not in concepts:
    raise ValueError(f'CONCEPT = {CONCEPT!r} is not a built-in concept; e.g. {concepts[:8]}')
auc = auroc_by_class(ranks(z), onehot)[:, concepts.index(CONCEPT)]
feature = int(auc.argmax())
alive = np.flatnonzero((z > 0).sum(0) >= 20)
control = int(np.random.default_rng(SEED).choice(alive[alive != feature]))
english = [e for e in concept_dataset(['en'])]
pool, target = [e.content for e in english], [e.concept == CONCEPT for e in english]
queries = [e.content for e in english if e.concept in QUERY_CONCEPTS]
x = store.rows(np.arange(store.n_rows))
curves = {}
for name, f in ((f'{CONCEPT} feature {feature}', feature), (f'random feature {control}', control)):
    scale = max_activation(sae, x, f)
    _, rank = retrieval_curve(enc, SITE, sae, f, queries, pool, target, [c * scale for c in STRENGTHS])
    curves[name] = {c: float(np.median(r)) for c, r in zip(STRENGTHS, rank)}
print(f'feature {feature}: AUROC {auc[feature]:.2f} for {CONCEPT!r}; {len(queries)} queries, pool of {len(pool)}')
"""),
    code("widgets.curve_slider(curves, xlabel='clamp × max', ylabel='median rank of the best dog sentence (1 = top)',\n"
         "                      title='Clamping the dog feature pulls dog sentences to the top')"),
    check("""
dog = list(curves.values())[0]
print(f'median rank unsteered > 50: {dog[STRENGTHS[0]] > 50}; at {STRENGTHS[-1]}x max <= 10: {dog[STRENGTHS[-1]] <= 10}')
print('the control moves less:', list(curves.values())[1][STRENGTHS[-1]] > dog[STRENGTHS[-1]])
"""),
]

NOTEBOOKS["08_splice_fidelity"] = [
    md("# 08 · What splicing the SAE in costs\n\n"
       "Replace layer 8's residual stream by the SAE's reconstruction and run the rest of e5-small: how much of "
       "the clean model's behaviour survives (embedding cosine, concept retrieval, cross-lingual retrieval), "
       "against zero- and mean-ablating the layer? Over SAE width and k. About 2 minutes on CPU.\n\n"
       "*In context:* Scaling Monosemanticity and Gao et al. express this cost as the compute a model would need "
       "to reach the spliced model's loss (the former: its SAEs' reconstruction is worth roughly a model "
       "trained with ~10× less compute). That needs a family of language models trained at several compute "
       "budgets. For an encoder without such a family we report the fraction of clean performance recovered "
       "instead: the same question in units we can measure."),
    params(E5_HEAD + """
WIDTHS = [768, 1536, 3072]
K_VALUES = [8, 16, 32]
LANGUAGES = ['en', 'es', 'ja', 'sw']
SEED = 0
"""),
    code(COMMON + """
from mmfeatures.analysis.fidelity import fidelity_sweep

enc = mmf.load_encoder(MODEL)
store = concept_store(enc, SITE)
base = dict(seed=SEED, lr=3e-3, warmup_steps=20, batch_size=2048, dead_tokens=100_000, device='cpu')
configs = [mmf.TrainConfig(mmf.TopK(k=16), w, name=f'w{w}-k16', **base) for w in WIDTHS] + \\
          [mmf.TrainConfig(mmf.TopK(k=k), 1536, name=f'w1536-k{k}', **base) for k in K_VALUES if k != 16]
saes = dict(zip([c.name for c in configs], cached_saes(store, configs)))
table = fidelity_sweep(enc, SITE, saes, concept_dataset(LANGUAGES), mean=store.stats().mean_d).set_index('sae')
table.round(3)
"""),
    code("""
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4), constrained_layout=True)
by_width = table.loc[[f'w{w}-k16' for w in WIDTHS]]
by_k = table.loc[[f'w1536-k{k}' for k in K_VALUES]]
metrics = ('cosine', 'retrieval', 'crosslingual')
plotting.curves({m: dict(zip(WIDTHS, by_width[f'recovered_{m}_vs_zero'])) for m in metrics}, xlabel='SAE width (k = 16)',
                ylabel='fraction recovered vs zero-ablation', title='Spliced SAE: share of clean behaviour kept', ax=a)
plotting.curves({m: dict(zip(K_VALUES, by_k[f'recovered_{m}_vs_zero'])) for m in metrics}, xlabel='k (width 1536)',
                ylabel='fraction recovered vs zero-ablation', title='More active latents, less damage', ax=b)
a.set_xscale('log')
"""),
    check("""
rec = table['recovered_retrieval_vs_zero']
print(f'every SAE recovers > 50% of concept retrieval vs zero-ablation: {bool((rec > 0.5).all())}')
print('the spliced model stays below the clean one (cosine < 1):', bool((table['cosine'] < 1).all()))
print('larger k recovers more retrieval:', bool(by_k['recovered_retrieval_vs_zero'].iloc[-1] > by_k['recovered_retrieval_vs_zero'].iloc[0]))
"""),
]


def write(name: str, cells) -> None:
    nb = nbf.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbf.write(nb, str(HERE / f"{name}.ipynb"))


if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        write(name, cells)
