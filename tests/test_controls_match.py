"""The cross-model verdict on planted "models" over the same rows: A is a planted store; B is A in another basis.
Where B's basis is a signed permutation of A's (each unit of A has a counterpart in B), with noise, A must match B
better than B's random-init copies (random rotations of A, which mix every unit): supported. Where B is noise, or
is itself a random rotation like its copies, not supported. The units are the stores' own dimensions (neurons), so
the planted correspondence is exact."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from planted_stores import draw, not_supported, supported, write

from mmfeatures.pipeline import MatchStep, run


def _basis(x: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """x in another basis: 'permuted' (a signed permutation: unit-to-unit), 'rotated' (a random rotation: every unit
    a mixture), or 'noise' (nothing of x), each with noise of 0.3 sd."""
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    if kind == "permuted":
        q = np.eye(d)[rng.permutation(d)] * rng.choice([-1.0, 1.0], d)
    elif kind == "rotated":
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    else:
        q = np.zeros((d, d))
    return (x @ q + 0.3 * x.std() * rng.standard_normal(x.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Store folders: A, B in three bases, and two random-init copies of B's architecture."""
    root = tmp_path_factory.mktemp("planted-models")
    p = draw()
    out = {"A": write(p, root, "m-a")["text.embed"]}
    for kind in ("permuted", "rotated", "noise"):
        out[kind] = write(replace(p, x=_basis(p.x, kind, 3)), root, "m-b")["text.embed"]
    for copy in (0, 1):
        out[f"copy{copy}"] = write(replace(p, x=_basis(p.x, "rotated", 10 + copy)), root,
                                   f"m-b+random-init-{copy}")["text.embed"]
    return out


def match(models, b: str, tmp_path, **kw):
    return run(MatchStep(store_a=models["A"], store_b=models[b], store_null=(models["copy0"], models["copy1"]),
                         n_perm=19, out=str(tmp_path), **kw))


def test_units_with_counterparts_beat_the_random_init_copies(models, tmp_path):
    supported(match(models, "permuted", tmp_path))


def test_noise_has_no_counterparts(models, tmp_path):
    record = match(models, "noise", tmp_path)
    not_supported(record)
    assert record.tests[0]["p_value"] > 0.05, "noise beats the shuffled-row null"


def test_a_random_rotation_is_no_better_than_the_random_init_copies(models, tmp_path):
    """B in a random basis, like its copies: each A unit finds partners beyond shuffled rows (p <= 0.05), but no
    better than in the copies: the baseline wins."""
    record = match(models, "rotated", tmp_path)
    t = record.tests[0]
    assert record.supported is not True and not t["passes"], record.verdict
    assert t["p_value"] <= 0.05 and t["effect"] < t["floor"], t


def test_a_null_store_of_another_model_is_refused(models, tmp_path):
    from mmfeatures.errors import InputError

    with pytest.raises(InputError, match="not a random-init copy of B"):
        run(MatchStep(store_a=models["A"], store_b=models["permuted"], store_null=(models["A"],),
                      out=str(tmp_path)))


def test_repeated_seeds_and_nulls_are_refused():
    from mmfeatures.errors import InputError

    with pytest.raises(InputError, match="repeats"):
        MatchStep(store_a="a", store_b="b", sae_a="s", seeds_a=("s",))
    with pytest.raises(InputError, match="repeats"):
        MatchStep(store_a="a", store_b="b", store_null=("n", "n"))
    with pytest.raises(InputError, match="one SAE per"):
        MatchStep(store_a="a", store_b="b", store_null=("n",), sae_null=("x", "y"))
