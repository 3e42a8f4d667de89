"""The readers of mmfeatures/sae/formats.py against files the tools write themselves (`make test-tools`).

tests/tools_side.py runs in the tools' own environment (MMF_TOOLS_PYTHON: eai-sparsify, dictionary-learning and saev
from PyPI): each tool trains tiny SAEs with its own trainer, saves them its own way and records its own encode and
decode of the same inputs. Here mmfeatures loads every one of them and must compute the same, with the site the
tool's hook name denotes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfeatures.sae import JumpReLU, ReLU, TopK, load_sae
from mmfeatures.sae.formats import detect_layout

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# the tool's hook name -> the site it denotes (docs/formats.md, "Sites"); sparsify's are its Trainer's hookpoints on a
# GPT-NeoX, dictionary_learning's its trainer.submodule_name (or a bare trainer.layer), saev's train_data.layer
SITES = {("sparsify", "layers.1"): "text.layer.1.resid", ("sparsify", "layers.0.mlp"): "text.layer.0.mlp",
         ("dictionary_learning", "resid_post_layer_3"): "text.layer.3.resid",
         ("dictionary_learning", "mlp_out_layer_2"): "text.layer.2.mlp",
         ("dictionary_learning", "attn_out_layer_1"): "text.layer.1.attn",
         ("dictionary_learning", "4"): "text.layer.4.resid",
         ("dictionary_learning", "resid_post_layer_0"): "text.layer.0.resid",
         ("dictionary_learning", "resid_post_layer_5"): "text.layer.5.resid",
         ("saev", "11"): "image.layer.11.resid"}
ARCHS = {"SparseCoder": TopK, "AutoEncoder": ReLU, "AutoEncoderNew": ReLU, "AutoEncoderTopK": TopK,
         "BatchTopKSAE": JumpReLU, "MatryoshkaBatchTopKSAE": JumpReLU, "JumpReluAutoEncoder": JumpReLU,
         "SparseAutoencoder": ReLU}
MODELS = {"sparsify": "hf:local/tiny-gpt-neox", "dictionary_learning": "hf:EleutherAI/pythia-70m-deduped",
          "saev": None}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The folder the tools wrote (tools_side.py's docstring has its layout)."""
    python = os.environ.get("MMF_TOOLS_PYTHON")
    if not python or not Path(python).is_file():
        pytest.skip("MMF_TOOLS_PYTHON names no python with the tools installed; run `make test-tools`")
    out = tmp_path_factory.mktemp("tools")
    python = os.path.abspath(python)            # it runs in `out`; abspath, not resolve: a venv's python is a link
    run = subprocess.run([python, str(ROOT / "tests" / "tools_side.py"), str(out)], cwd=out, capture_output=True,
                         text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    assert run.returncode == 0, f"tools_side.py failed:\n{run.stderr[-4000:]}"
    return out


@pytest.mark.parametrize("tool", ["sparsify", "dictionary_learning", "saev"])
def test_each_sae_a_tool_writes_loads_and_computes_what_the_tool_computes(written, tool):
    x = torch.from_numpy(np.load(written / "x.npy"))
    entries = [e for e in json.loads((written / "manifest.json").read_text()) if e["spec"].startswith(f"{tool}:")]
    expected = {"sparsify": {"SparseCoder"}, "saev": {"SparseAutoencoder"},
                "dictionary_learning": set(ARCHS) - {"SparseCoder", "SparseAutoencoder"}}[tool]
    assert {e["class"] for e in entries} == expected
    for e in entries:
        what = f"{e['class']} at {e['hook']}"
        sae = load_sae(e["spec"])
        assert type(sae.arch) is ARCHS[e["class"]], what
        z_ref, r_ref = np.load(Path(e["folder"]) / "tool_z.npy"), np.load(Path(e["folder"]) / "tool_r.npy")
        assert (z_ref != 0).any() and (z_ref == 0).any(), f"{what}: the tool's latents are trivial"
        z = sae.encode(x)
        np.testing.assert_allclose(z.numpy(), z_ref, rtol=1e-5, atol=1e-5, err_msg=f"{what}: latents")
        np.testing.assert_allclose(sae.decode(z).numpy(), r_ref, rtol=1e-5, atol=1e-5, err_msg=f"{what}: recon")
        site = SITES[(tool, e["hook"])]
        meta = sae.metadata
        assert (meta["site"], meta["hook_name"], meta["modality"]) == (site, site, site.split(".")[0]), what
        assert (meta["source"]["tool"], meta["source"]["hook_name"]) == (tool, e["hook"]), what
        assert meta["model_name"] == MODELS[tool], what
        # the same files given as a plain path are recognised as this tool's
        assert detect_layout(e["spec"].split(":", 1)[1]) == tool, what


def test_the_tools_versions_are_the_pinned_ones(written):
    versions = json.loads((written / "versions.json").read_text())
    assert {k: versions[k] for k in ("eai-sparsify", "dictionary-learning", "saev")} == \
        {"eai-sparsify": "1.3.3", "dictionary-learning": "0.1.0", "saev": "0.1.0"}
