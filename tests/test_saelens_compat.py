"""Both directions against real SAELens (6.54, in its own venv: `make test-compat`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfeatures.sae import SAE, BatchTopK, JumpReLU, MatryoshkaBatchTopK, ReLU, TopK, load_sae, save_sae

ROOT = Path(__file__).resolve().parents[1]
PYTHON = Path(os.environ.get("MMF_SAELENS_PYTHON", ROOT / ".venv-saelens" / "bin" / "python"))
pytestmark = pytest.mark.slow


def saelens(*args) -> None:
    if not PYTHON.is_file():
        pytest.skip(f"no SAELens environment at {PYTHON}; create it with `make test-compat`")
    subprocess.run([str(PYTHON), str(ROOT / "tests" / "saelens_side.py"), *map(str, args)], check=True,
                   capture_output=True, text=True)


@pytest.fixture()
def inputs(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 16)).astype(np.float32) * 2
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "x.npy", torch.from_numpy(x)


def test_saelens_loads_what_we_write(tmp_path, inputs):
    path, x = inputs
    folders = []
    for i, arch in enumerate([TopK(k=4), ReLU(), JumpReLU(), BatchTopK(k=4), MatryoshkaBatchTopK(k=4)]):
        torch.manual_seed(i)
        sae = SAE(16, 64, arch)
        with torch.no_grad():
            sae.b_enc.uniform_(-0.2, 0.2)
            sae.b_dec.normal_()
            sae.log_threshold.fill_(-2.0)
            sae.threshold_ema.fill_(0.1)
        folders.append(save_sae(sae, tmp_path / type(arch).__name__, model_name="m", hook_name="h", input_scale=1.5))
    # one trained by the train step: its cfg.json carries the model, site, languages and training data
    from test_sae_formats import language_store

    from mmfeatures.sae import TrainConfig, train

    store = language_store(tmp_path / "store")
    folders.append(train(store, TrainConfig(TopK(k=4), 64, batch_size=100, total_rows=300), tmp_path / "trained",
                         progress=False)[0].folder)
    saelens("load", path, *folders)
    for folder in folders:
        ours = load_sae(folder)
        z = ours.encode(x)
        np.testing.assert_allclose(np.load(folder / "saelens_z.npy"), z.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.load(folder / "saelens_r.npy"), ours.decode(z).numpy(), rtol=1e-5, atol=1e-5)
    meta = json.loads((folders[-1] / "saelens_metadata.json").read_text())
    assert (meta["model_name"], meta["hook_name"], meta["site"], meta["modality"]) == \
        ("hf:someone/tiny", "text.layer.2.resid", "text.layer.2.resid", "text")
    assert meta["languages"] == ["de", "en", "ja"] and meta["training_data"]["store_key"] == store.key


def test_we_load_what_saelens_writes(tmp_path, inputs):
    path, x = inputs
    saelens("write", path, tmp_path)
    for name in ("topk", "standard", "jumprelu", "topk-no-b-dec", "topk-rescaled", "jumprelu-no-b-dec"):
        ours = load_sae(tmp_path / name)
        z = ours.encode(x)
        np.testing.assert_allclose(z.numpy(), np.load(tmp_path / name / "saelens_z.npy"), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours.decode(z).numpy(), np.load(tmp_path / name / "saelens_r.npy"),
                                   rtol=1e-5, atol=1e-5)


RELEASE_CHECK = """
import json, sys, time
from mmfeatures.errors import ModelNotAvailableError
from mmfeatures.sae import load_sae
from mmfeatures.sae.releases import lookup

found = lookup("gpt2-small-res-jb", "blocks.8.hook_resid_pre")
t0 = time.perf_counter()
try:
    load_sae("saelens:gpt2-small-res-jb:blocks.8.hook_resid_pre")
    message = None
except ModelNotAvailableError as e:
    message = str(e)
print(json.dumps({"release": found._asdict(), "message": message, "seconds": time.perf_counter() - t0}))
"""


def test_a_release_resolves_through_saelens_own_directory(tmp_path):
    """With sae_lens importable, a release name resolves through SAELens's pretrained_saes.yaml; offline and not
    cached it fails at once with the command that fetches exactly that folder."""
    if not PYTHON.is_file():
        pytest.skip(f"no SAELens environment at {PYTHON}; create it with `make test-compat`")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    out = subprocess.run([str(PYTHON), "-c", RELEASE_CHECK], check=True, capture_output=True, text=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["release"]["repo_id"] == "jbloom/GPT2-Small-SAEs-Reformatted"
    assert result["release"]["folder"] == "blocks.8.hook_resid_pre" and result["release"]["conversion"] is None
    assert "hf download jbloom/GPT2-Small-SAEs-Reformatted --include 'blocks.8.hook_resid_pre'" in result["message"]
    assert result["seconds"] < 10
