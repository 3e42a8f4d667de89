# %% [markdown]
# # 01 · Toy models of superposition (Elhage et al. 2022)
#
# A ReLU output model x' = ReLU(WᵀWx + b) squeezes n sparse features into m < n dimensions. Dense features:
# the model keeps the m most important ones, orthogonal, and drops the rest. Sparse features: it stores *more
# features than dimensions*, in superposition (5 in 2: a pentagon). Many features: the dimensions per feature
# D* fall with sparsity and stick at 1/2. Takes about a minute on CPU.

# %%
import matplotlib.pyplot as plt
import numpy as np

from mmfeatures import plotting, widgets
from mmfeatures.pipeline import check_sizes
from mmfeatures.toy import ToyConfig, dimensions_per_feature, feature_dimensionality, train_toy

# %% tags=["parameters"]
# Parameters (papermill). These are toy models: no hub model is involved; on a GPU set device = 'cuda'.
n_features, n_hidden, importance_decay, steps = 5, 2, 0.9, 6000
sparsities = [0.0, 0.5, 0.8, 0.9, 0.95, 0.99]
big_n_features, big_n_hidden, big_steps, big_levels = 80, 8, 2500, 20
device = 'cpu'
seed = 0

# %%
check_sizes(n_features=(n_features, 3), steps=(steps, 500), big_levels=(big_levels, 4))
small = train_toy(ToyConfig(n_features=n_features, n_hidden=n_hidden, importance_decay=importance_decay,
                            steps=steps, seed=seed, device=device), sparsities)
fig, axes = plt.subplots(1, len(sparsities), figsize=(2.3 * len(sparsities), 2.6), constrained_layout=True)
for ax, s, W in zip(axes, sparsities, small.W, strict=True):
    plotting.toy_geometry(W, small.importance, title=f'S = {s}', ax=ax)
fig.suptitle(f'Feature directions W_i of {n_features} features in {n_hidden} dimensions, per sparsity S '
             '(label: importance)')
print('feature norms |W_i| per sparsity:')
print(np.linalg.norm(small.W, axis=1).round(2))

# %% [markdown]
# Move the slider: each position is a model trained at that sparsity.

# %%
widgets.toy_geometry(dict(zip(sparsities, small.W, strict=True)), small.importance)


# %%
# NBVAL_CHECK_OUTPUT
def pentagon(W):
    norms = np.linalg.norm(W, axis=0)
    angles = np.sort(np.degrees(np.arctan2(W[1], W[0]))[norms > 0.5])
    gaps = np.diff(np.r_[angles, angles[0] + 360]) if len(angles) else np.array([])
    return len(gaps) == 5 and bool(np.abs(gaps - 72).max() < 12)


dense = np.linalg.norm(small.W[0], axis=0)
cos = small.W[0][:, 0] @ small.W[0][:, 1] / (dense[0] * dense[1])
print('dense: the 2 most important features kept, orthogonal, the rest dropped:',
      bool(dense[:2].min() > 0.9 and dense[2:].max() < 0.5 and abs(cos) < 0.1))
print(f'S = {sparsities[-1]}: all 5 features stored, as a pentagon:', pentagon(small.W[-1]))

# %% [markdown]
# ## Many features: D* = m / ‖W‖²_F, and each feature's D_i
#
# Uniform importance; feature probability 1 − S from 1 down to about 0.003.

# %%
big_sparsities = 1 - np.logspace(0, -2.5, big_levels)
big = train_toy(ToyConfig(n_features=big_n_features, n_hidden=big_n_hidden, steps=big_steps, batch_size=512,
                          seed=seed, device=device), list(big_sparsities))
d_star = dimensions_per_feature(big.W)
d_i = feature_dimensionality(big.W)
alive = np.linalg.norm(big.W, axis=1) > 0.5
fig = plotting.dimensionality(big_sparsities, d_star, d_i, alive)

# %%
# NBVAL_CHECK_OUTPUT
print('D* near 1 when dense:', bool(d_star[0] > 0.9), '| below 0.2 when very sparse:', bool(d_star[-1] < 0.2))
print('D* decreases with sparsity:', bool(np.all(np.diff(d_star) < 0.05)))
near_half = np.abs(d_star - 0.5) < 0.05
print('D* sticks near 1/2 on consecutive sparsity levels:', bool(np.any(near_half[:-1] & near_half[1:])))
clusters = {f: int((np.abs(d_i[alive] - f) < 0.02).sum()) for f in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8)}
print('features cluster at D_i = 1/2 and at 2/5 (>= 10 each):', clusters[1 / 2] >= 10 and clusters[2 / 5] >= 10)

# %% [markdown]
# With more features (n = 200, m = 20) the plateau is wider and more D_i fractions appear:
# `tests/test_toy.py::test_many_features_plateau_at_half_a_dimension` (marked slow) checks that case.
