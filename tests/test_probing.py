"""k-sparse probing: a label carried by one unit is read from k = 1; shuffled labels read at chance."""

import numpy as np
import pytest

from mmfeatures.analysis.probing import sparse_probe
from mmfeatures.errors import InputError


def _planted(seed: int = 0, n: int = 600, units: int = 40):
    """Three classes; class c raises unit c (the rest is noise), and every unit is noisy."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    z = rng.standard_normal((n, units))
    z[np.arange(n), labels] += 3.0
    return z, [f"c{c}" for c in labels]


def test_a_label_carried_by_one_unit_is_read_with_k_1_and_shuffled_labels_are_not():
    z, labels = _planted()
    got = sparse_probe(z, labels, ks=(1, 5), dense=True)
    assert got["classes"] == 3 and got[1] > 0.9 and got[5] > 0.9 and got["dense"] > 0.85
    shuffled = list(np.random.default_rng(1).permutation(labels))
    null = sparse_probe(z, shuffled, ks=(1, 5))
    assert abs(null[1] - 0.5) < 0.1 and abs(null[5] - 0.5) < 0.1


def test_rows_without_a_label_are_left_out_and_bad_input_is_named():
    z, labels = _planted()
    labels[:50] = [None] * 50
    assert sparse_probe(z, labels, ks=(1,))[1] > 0.9
    with pytest.raises(InputError, match="one label per row"):
        sparse_probe(z[:10], labels)
    with pytest.raises(InputError, match="min_examples"):
        sparse_probe(z[:12], ["a"] * 12)
