"""The cross-lingual and cross-modal verdicts on stores with the effect planted by construction: each must say
"supported" where the effect is there, "not supported" where it is not (each test failing on its own), and fail
its baseline where the SAE is no better than random directions of its width and L0 (each test passing its null,
failing its baseline). tests/planted_stores.py makes the stores; scripts/mutate_verdicts.py checks that mutating
the null, the baseline or the rule makes one of these fail."""

from __future__ import annotations

import numpy as np
import pytest
from planted_stores import LOW, draw, not_supported, random_direction_sae, supported, train_saes, write

from mmfeatures.pipeline import AnalyzeStep, run


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("planted")


def analyze(store_dir, name: str, p, train, *, kind: str = "crosslingual", sae_folders=None, **kw):
    """The analyze step on the scored draw ``p``, with SAEs (three seeds) trained on the text rows of ``train``."""
    scored = write(p, store_dir, name)
    saes = sae_folders or train_saes(write(train, store_dir, name)["text.embed"])
    stores = tuple(scored[s] for s in (("image.embed", "text.embed") if kind == "crossmodal" else ("text.embed",)))
    return run(AnalyzeStep(stores=stores, sae=saes[0], seeds=tuple(saes[1:]), kind=kind, concept="c0", n_perm=19,
                           out=str(store_dir / f"run-{name}"), **kw))


def outcome(record) -> dict[str, dict]:
    return {t["test"].split(" beyond ")[0]: t for t in record.tests}


def _baseline_wins(record):
    """Every test beats its null (p <= 0.05) and none beats the baseline: only the baseline stops the claim."""
    assert record.supported is not True, record.verdict
    for t in record.tests:
        assert t["p_value"] <= 0.05, f"{t['test']} does not beat its null, so the baseline is not what stops it"
        assert not t["passes"], f"{t['test']} passes against a baseline that is the SAE's equal"


def test_crosslingual_supported_where_concept_directions_are_shared(store_dir):
    supported(analyze(store_dir, "cl-shared", draw(), draw(train=True)))


def test_crosslingual_not_supported_where_each_language_has_its_own_concepts(store_dir):
    record = analyze(store_dir, "cl-own", draw(shared=False), draw(train=True, shared=False))
    not_supported(record)


def test_crosslingual_not_supported_on_noise(store_dir):
    not_supported(analyze(store_dir, "cl-noise", draw(signal=False), draw(signal=False, train=True)))


def test_crosslingual_random_directions_do_not_beat_their_baseline(store_dir):
    train = write(draw(train=True), store_dir, "cl-shared")["text.embed"]
    saes = [random_direction_sae(train, store_dir / f"rd-cl-{s}", seed=s) for s in range(3)]
    _baseline_wins(analyze(store_dir, "cl-shared", draw(), None, sae_folders=saes))


CONCEPTS = 24


def test_crossmodal_supported_where_pictures_carry_their_concept(store_dir):
    supported(analyze(store_dir, "cm-linked", draw(n_images=2), draw(train=True), kind="crossmodal"))


def test_crossmodal_not_supported_where_pictures_carry_another_concept(store_dir):
    other = np.roll(np.arange(CONCEPTS), 5)             # every picture shows another concept's direction
    not_supported(analyze(store_dir, "cm-unlinked", draw(n_images=2, image_concepts=other), draw(train=True),
                           kind="crossmodal"))


def test_crossmodal_in_a_space_random_directions_cover_is_not_supported(store_dir):
    """Eight concepts in eight dimensions: random directions of the SAE's width and L0 are as multimodal as the
    trained SAE, which beats the shuffled-picture null but not them."""
    _baseline_wins(analyze(store_dir, "cm-low", draw(n_images=4, **LOW), draw(train=True, n_images=4, **LOW),
                           kind="crossmodal"))


def test_one_sentence_per_concept_cannot_test_overlap_and_rests_on_the_other_half(store_dir):
    """A parallel corpus (one sentence per concept): the overlap half cannot be computed, so the verdict says so,
    never 'not supported'; declaring rests_on='multilingual' decides on the other half, seeds included."""
    one = draw()
    keep = np.flatnonzero(one.labels.group != "2")
    from dataclasses import replace

    one = replace(one, x=one.x[keep], labels=one.labels.take(keep))
    record = analyze(store_dir, "cl-one", one, draw(train=True))
    assert record.status == "cannot be tested" and record.supported is None, record.verdict
    assert "second sentence" in record.verdict
    rests = analyze(store_dir, "cl-one", one, draw(train=True), rests_on="multilingual")
    assert rests.status == "supported", rests.verdict


def test_an_effect_in_one_seed_only_is_inconclusive(store_dir):
    """The headline SAE has the effect; the other two 'seeds' are random directions. Each point estimate beats its
    null and floor, but the interval over seeds reaches 0 and the effect the test detects: inconclusive."""
    trained = train_saes(write(draw(train=True), store_dir, "cl-shared")["text.embed"])
    train = write(draw(train=True), store_dir, "cl-shared")["text.embed"]
    mixed = [trained[0], *(random_direction_sae(train, store_dir / f"rd-cl-{s}", seed=s) for s in (1, 2))]
    record = analyze(store_dir, "cl-shared", draw(), None, sae_folders=mixed)
    assert record.status == "inconclusive at this sample size" and record.supported is None, record.verdict
    for t in record.tests:
        assert t["p_value"] <= 0.05 and t["effect"] >= t["floor"] and t["low"] <= 0, t


@pytest.mark.parametrize("floors", [(0.5, 0.5), (0.5, 0.01), (0.01, 0.5)], ids=["both", "multilingual", "overlap"])
def test_a_floor_declared_above_the_effect_is_not_met(store_dir, floors):
    """The planted effect, against floors set above it before the run (both tests, or one): a test whose floor is
    above its effect fails on that alone, and one failing test is enough to withhold 'supported'."""
    record = analyze(store_dir, "cl-shared", draw(), draw(train=True), floor=floors[0], overlap_floor=floors[1])
    assert record.supported is not True, record.verdict
    for t, floor in zip(record.tests, floors, strict=True):
        assert t["p_value"] <= 0.05 and t["low"] > 0 and t["floor"] == floor, t
        assert t["passes"] is (t["effect"] >= floor) is (floor < 0.5), t


def test_a_verdict_computed_twice_is_the_same(store_dir):
    """Every draw (permutations, bootstrap, power simulations, baseline dictionaries) is seeded: the step computed
    twice from scratch (no folder, so nothing reused) gives the same record."""
    scored = write(draw(), store_dir, "cl-shared")["text.embed"]
    saes = train_saes(write(draw(train=True), store_dir, "cl-shared")["text.embed"])
    step = AnalyzeStep(stores=(scored,), sae=saes[0], seeds=tuple(saes[1:]), concept="c0", n_perm=19, out=None)
    first, second = run(step), run(step)
    assert not first.reused and not second.reused
    assert first.verdict == second.verdict and first.tests == second.tests and first.scores == second.scores


def test_each_half_must_also_beat_the_random_init_model(store_dir):
    """With the random-init copy's stores and SAE (here: noise with the same examples, and an SAE trained on noise),
    each half gets a second test beyond that model; the planted effect beats both baselines. With the model itself
    as its own 'random-init copy' (its rows under a copy's name), the two extra tests cannot pass."""
    noise = write(draw(signal=False), store_dir, "cl-shared+random-init-0")["text.embed"]
    noise_sae = train_saes(write(draw(signal=False, train=True), store_dir, "cl-shared+random-init-0")["text.embed"],
                           seeds=(0,))[0]
    record = analyze(store_dir, "cl-shared", draw(), draw(train=True), null_stores=(noise,), null_sae=noise_sae)
    assert record.status == "supported" and len(record.tests) == 4 and all(t["passes"] for t in record.tests), \
        record.verdict
    assert sum("random-init model" in t["test"] for t in record.tests) == 2
    scored = write(draw(), store_dir, "cl-shared+random-init-1")["text.embed"]      # the model's own rows
    own = train_saes(write(draw(train=True), store_dir, "cl-shared+random-init-1")["text.embed"], seeds=(0,))[0]
    itself = analyze(store_dir, "cl-shared", draw(), draw(train=True), null_stores=(scored,), null_sae=own)
    assert itself.supported is not True
    assert not any(t["passes"] for t in itself.tests if "random-init model" in t["test"]), itself.verdict


def test_crossmodal_halves_must_also_beat_the_model_with_a_random_image_tower(store_dir):
    """The pictures of a 'random image tower' (each shows another concept's direction), read by the same SAE: the
    linked pictures beat them on both halves."""
    other = np.roll(np.arange(CONCEPTS), 5)
    unlinked = write(draw(n_images=2, image_concepts=other), store_dir, "cm-linked+random-image-0")
    saes = train_saes(write(draw(train=True), store_dir, "cm-linked")["text.embed"])
    record = analyze(store_dir, "cm-linked", draw(n_images=2), None, kind="crossmodal", sae_folders=saes,
                     null_stores=(unlinked["image.embed"], unlinked["text.embed"]), null_sae=saes[0])
    assert record.status == "supported" and len(record.tests) == 4, record.verdict
