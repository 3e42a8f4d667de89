"""The notebook widgets, driven without a browser: set a control, check what the panel drew."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from mmfeatures import widgets  # noqa: E402
from mmfeatures.analysis import Labels  # noqa: E402


@pytest.fixture()
def planted():
    """Two concepts x three languages x 4 sentences; feature c fires on concept c in every language,
    feature 2 only on Japanese."""
    rng = np.random.default_rng(0)
    rows = [(c, lang) for c in ("dog", "tree") for lang in ("en", "ja", "sw") for _ in range(4)]
    concept = np.array([r[0] for r in rows], object)
    language = np.array([r[1] for r in rows], object)
    z = rng.random((len(rows), 6)).astype(np.float32) * 0.05
    z[concept == "dog", 0] += 1.0
    z[concept == "tree", 1] += 1.0
    z[language == "ja", 2] += 2.0
    labels = Labels(concept, language, np.array(["text"] * len(rows), object),
                    example_id=np.array([f"s{i}" for i in range(len(rows))], object))
    return z, labels


def test_concept_heatmap_follows_the_dropdown_and_languages(planted):
    z, labels = planted
    panel = widgets.concept_heatmap(z, labels, top=2, concept="dog")
    assert panel.state["features"][0] == 0 and panel.state["matrix"].shape == (3, 2)
    panel.controls["concept"].value = "tree"
    assert panel.state["concept"] == "tree" and panel.state["features"][0] == 1
    assert np.all(panel.state["matrix"][:, 0] > 0.9)              # tree's feature fires in every language
    panel.controls["languages"].value = ("ja",)
    assert panel.state["languages"] == ["ja"] and panel.state["matrix"].shape == (1, 2)
    panel.controls["languages"].value = ()
    assert panel.state == {"message": "Select at least one language."}


def test_toy_geometry_slider_redraws():
    weights = {0.0: np.eye(2, 5), 0.9: np.ones((2, 5))}
    panel = widgets.toy_geometry(weights, np.linspace(1, 0.5, 5))
    assert panel.state["sparsity"] == 0.0 and np.array_equal(panel.state["W"], np.eye(2, 5))
    panel.controls["sparsity"].value = 0.9
    assert np.array_equal(panel.state["W"], np.ones((2, 5)))


def test_feature_browser_shows_each_modality_top(planted):
    z, labels = planted
    n = len(labels)
    img = Labels(np.array(["dog", "tree"], object), np.array(["", ""], object), np.array(["image", "image"], object),
                 example_id=np.array(["i0", "i1"], object))
    both = Labels.concat(labels, img)
    z_img = np.zeros((2, z.shape[1]), np.float32)
    z_img[0, 0], z_img[1, 1] = 3.0, 3.0
    images = {"i0": Image.new("RGB", (8, 8), "red"), "i1": Image.new("RGB", (8, 8), "green")}
    texts = {f"s{i}": f"sentence {i}" for i in range(n)}
    panel = widgets.feature_browser(np.concatenate([z, z_img]), both, images, texts, feature=0, n_images=1, n_texts=3)
    assert panel.state["images"] == ["i0"] and all(int(t.split()[1]) < 12 for t in panel.state["texts"])
    panel.controls["feature"].value = 1
    assert panel.state["images"] == ["i1"] and all(int(t.split()[1]) >= 12 for t in panel.state["texts"])
    panel.controls["languages"].value = ()
    assert "message" in panel.state


def test_match_explorer_and_curve_slider():
    rng = np.random.default_rng(1)
    za = rng.random((50, 3))
    zb = za[:, [2, 0, 1]] + 0.01 * rng.random((50, 3))
    panel = widgets.match_explorer(za, zb, np.array([1, 2, -1]), np.array([0.99, 0.98, 0.0]),
                                   [f"row {i}" for i in range(50)])
    assert panel.state["match"] == 1 and panel.state["top_a"][0] == f"row {int(np.argmax(za[:, 0]))}"
    panel.controls["feature"].value = 2
    assert "no match" in panel.state["message"]
    curves = widgets.curve_slider({"dog": {0: 100.0, 5: 2.0}, "control": {0: 100.0, 5: 90.0}},
                                  xlabel="clamp", ylabel="rank", title="t")
    assert curves.state["values"] == {"dog": 2.0, "control": 90.0}
    curves.controls["x"].value = 0
    assert curves.state["values"] == {"dog": 100.0, "control": 100.0}


def test_unit_bars_follow_the_dropdown(planted):
    z, labels = planted
    panel = widgets.unit_bars(z, labels, [0, 2])
    assert panel.state["unit"] == 0 and np.array_equal(panel.state["values"], z[:, 0])
    panel.controls["unit"].value = 2
    assert panel.state["unit"] == 2 and panel.state["values"].argmax() in np.flatnonzero(labels.language == "ja")
    empty = widgets.unit_bars(z, labels, [])
    assert empty.state == {"message": "No units to show."}


def test_sae_density_picks_an_sae_and_its_metrics():
    densities = {"topk-8": np.array([0.0, 0.01, 0.1]), "relu": np.array([0.5, 0.5, 0.0])}
    metrics = {"topk-8": {"nmse": 0.3, "l0": 8.0}, "relu": {"nmse": 0.2, "l0": 30.0}}
    panel = widgets.sae_density(densities, metrics)
    assert panel.state["sae"] == "topk-8" and panel.state["metrics"] == {"nmse": 0.3, "l0": 8.0}
    panel.controls["sae"].value = "relu"
    assert panel.state["metrics"]["l0"] == 30.0 and np.array_equal(panel.state["density"], densities["relu"])


def test_score_distributions_follow_score_and_unit_sets():
    rng = np.random.default_rng(2)
    scores = {"neurons": {"auroc": rng.random(20), "purity": rng.random(20)},
              "SAE": {"auroc": rng.random(30), "purity": rng.random(30)},
              "null": {"auroc": rng.random(10)}}
    panel = widgets.score_distributions(scores, ranges={"auroc": (0.5, 1.0)})
    assert panel.state["score"] == "auroc" and panel.state["units"] == ["neurons", "SAE", "null"]
    panel.controls["score"].value = "purity"
    assert panel.state["units"] == ["neurons", "SAE"]                # the null has no purity
    assert np.array_equal(panel.state["groups"]["SAE"], scores["SAE"]["purity"])
    panel.controls["units"].value = ("null",)
    assert "message" in panel.state
    panel.controls["units"].value = ("SAE",)
    assert list(panel.state["groups"]) == ["SAE"] and len(panel.state["groups"]["SAE"]) == 30


def test_curve_picker_draws_the_chosen_family():
    families = {"cosine": {"vs zero": {768: 0.9, 1536: 0.95}, "vs mean": {768: 0.8, 1536: 0.9}},
                "retrieval": {"vs zero": {768: 0.6, 1536: 0.7}, "vs mean": {768: 0.5, 1536: 0.6}}}
    panel = widgets.curve_picker(families, xlabel="width", ylabel="recovered", xscale="log")
    assert panel.state["metric"] == "cosine" and panel.state["curves"] == families["cosine"]
    panel.controls["metric"].value = "retrieval"
    assert panel.state["curves"]["vs zero"][1536] == 0.7
