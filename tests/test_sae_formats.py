"""SAEs written by other tools (docs/formats.md): each layout is written here as the tool writes it (tiny random
weights, d_in 16, 64 latents), read into mmfeatures' SAE, and checked against the tool's own forward pass
re-implemented below from its source; plus site mapping, wrong-reader errors, SAELens releases offline, and the
metadata mmfeatures writes into cfg.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_hub_cache import fill_cache

from mmfeatures.errors import InputError, ModelNotAvailableError
from mmfeatures.sae import SAE, JumpReLU, ReLU, TopK, load_sae, save_sae
from mmfeatures.sae.formats import (
    detect_layout,
    read_dictionary_learning,
    read_saev,
    read_sparsify,
    site_from_hook,
)

D, F, K = 16, 64, 4
G = torch.Generator().manual_seed(0)
X = torch.randn(32, D, generator=G) * 2


def rand(*shape: int, scale: float = 0.3) -> torch.Tensor:
    return torch.randn(*shape, generator=G) * scale


def dense(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    return torch.zeros(values.shape[0], F).scatter(-1, indices, values)


def same(sae: SAE, z_ref: torch.Tensor, recon_ref: torch.Tensor) -> None:
    """The SAE's latents and reconstruction equal the tool's (and the tool's latents are not trivial)."""
    z = sae.encode(X)
    assert (z_ref != 0).any() and (z_ref == 0).any()
    torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sae.decode(z), recon_ref, rtol=1e-5, atol=1e-5)


# -- EleutherAI sparsify: cfg.json + sae.safetensors per hookpoint (SparseCoder.save_to_disk) ---------------------

def write_sparsify(folder: Path, **cfg_changes) -> dict[str, torch.Tensor]:
    state = {"encoder.weight": rand(F, D), "encoder.bias": rand(F, scale=0.1), "W_dec": rand(F, D),
             "b_dec": rand(D)}
    folder.mkdir(parents=True)
    save_file(state, str(folder / "sae.safetensors"))
    cfg = {"activation": "topk", "expansion_factor": 4, "normalize_decoder": True, "num_latents": F, "k": K,
           "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": D, **cfg_changes}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return state


def sparsify_forward(s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseCoder.encode (fused_encoder: relu(linear(x - b_dec)), then topk) and decode."""
    pre = torch.relu((X - s["b_dec"]) @ s["encoder.weight"].T + s["encoder.bias"])
    values, indices = pre.topk(K, dim=-1, sorted=False)
    recon = (values[..., None] * s["W_dec"][indices]).sum(1) + s["b_dec"]
    return dense(values, indices), recon


def test_sparsify_hookpoints_read_and_compute_what_sparsify_computes(tmp_path):
    ckpt = tmp_path / "checkpoints" / "run"
    state = write_sparsify(ckpt / "layers.3")
    sae = load_sae(f"sparsify:{ckpt / 'layers.3'}")
    assert isinstance(sae.arch, TopK) and sae.arch.k == K
    same(sae, *sparsify_forward(state))
    assert sae.metadata["site"] == "text.layer.3.resid" and sae.metadata["hook_name"] == "text.layer.3.resid"
    assert sae.metadata["model_name"] is None and "model=" in sae.metadata["note"]     # sparsify records no model
    assert sae.metadata["source"]["tool"] == "sparsify"
    # a checkpoint with one hookpoint reads as that hookpoint; a plain path is detected; model= and site= apply
    assert read_sparsify(ckpt).metadata["site"] == "text.layer.3.resid"
    named = load_sae(ckpt / "layers.3", model="hf:EleutherAI/pythia-70m", site="text.layer.4.resid")
    assert (named.metadata["model_name"], named.metadata["site"]) == ("hf:EleutherAI/pythia-70m", "text.layer.4.resid")
    assert "note" not in named.metadata
    # with two hookpoints the checkpoint names them, and a hookpoint picks one
    write_sparsify(ckpt / "gpt_neox.layers.5.mlp")
    with pytest.raises(InputError, match=r"2 hookpoints.*gpt_neox\.layers\.5\.mlp"):
        read_sparsify(ckpt)
    assert read_sparsify(ckpt, "gpt_neox.layers.5.mlp").metadata["site"] == "text.layer.5.mlp"
    with pytest.raises(InputError, match="site="):
        load_sae(ckpt / "layers.3", site="layer 3")


@pytest.mark.parametrize("change, field", [({"transcode": True}, "transcode"),
                                           ({"skip_connection": True}, "skip_connection"),
                                           ({"activation": "groupmax"}, "activation")])
def test_sparsify_features_an_sae_cannot_hold_are_refused_by_name(tmp_path, change, field):
    write_sparsify(tmp_path / "layers.0", **change)
    with pytest.raises(InputError, match=field):
        load_sae(f"sparsify:{tmp_path / 'layers.0'}")


# -- dictionary_learning: ae.pt (a state dict) + config.json (trainer.dict_class) -----------------------------------

def write_dictionary_learning(folder: Path, dict_class: str, threshold: float = 0.2) -> dict[str, torch.Tensor]:
    """The state dict each class's ``state_dict()`` holds (decoder as nn.Linear(dict_size, activation_dim))."""
    linear = {"encoder.weight": rand(F, D), "encoder.bias": rand(F, scale=0.1), "decoder.weight": rand(D, F)}
    direct = {"W_enc": rand(D, F), "b_enc": rand(F, scale=0.1), "W_dec": rand(F, D) * (torch.rand(F, 1) + 0.5),
              "b_dec": rand(D)}
    state = {"AutoEncoder": {**linear, "bias": rand(D)},
             "AutoEncoderNew": {**linear, "decoder.bias": rand(D)},
             "AutoEncoderTopK": {**linear, "b_dec": rand(D), "k": torch.tensor(K, dtype=torch.int),
                                 "threshold": torch.tensor(0.3)},
             "BatchTopKSAE": {**linear, "b_dec": rand(D), "k": torch.tensor(K, dtype=torch.int),
                              "threshold": torch.tensor(threshold)},
             "MatryoshkaBatchTopKSAE": {**direct, "k": torch.tensor(K, dtype=torch.int),
                                        "threshold": torch.tensor(threshold), "group_sizes": torch.tensor([16, 48])},
             "JumpReluAutoEncoder": {**direct, "threshold": torch.rand(F, generator=G) * 0.6 - 0.1}}[dict_class]
    folder.mkdir(parents=True)
    torch.save(state, folder / "ae.pt")
    trainer = {"trainer_class": "Trainer", "dict_class": dict_class, "activation_dim": D, "dict_size": F, "k": K,
               "layer": 3, "lm_name": "EleutherAI/pythia-70m-deduped", "submodule_name": "resid_post_layer_3"}
    (folder / "config.json").write_text(json.dumps({"trainer": trainer, "buffer": {"ctx_len": 128}}))
    return state


def dictionary_learning_forward(name: str, s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class's ``encode(x)`` (default arguments) and ``decode(f)``, from dictionary_learning's source."""
    if name == "JumpReluAutoEncoder":           # apply_b_dec_to_input is False
        pre = X @ s["W_enc"] + s["b_enc"]
        norm = s["W_dec"].norm(dim=1)
        f = torch.relu(pre * (pre > s["threshold"])) * norm
        return f, (f / norm) @ s["W_dec"] + s["b_dec"]
    if name == "MatryoshkaBatchTopKSAE":
        post = torch.relu((X - s["b_dec"]) @ s["W_enc"] + s["b_enc"])
        f = post * (post > s["threshold"])
        return f, f @ s["W_dec"] + s["b_dec"]
    b_dec = {"AutoEncoder": s.get("bias"), "AutoEncoderNew": s.get("decoder.bias")}.get(name, s.get("b_dec"))
    x_in = X if name == "AutoEncoderNew" else X - b_dec
    post = torch.relu(x_in @ s["encoder.weight"].T + s["encoder.bias"])
    if name == "AutoEncoderTopK":
        values, indices = post.topk(K, dim=-1, sorted=False)
        f = dense(values, indices)
    elif name == "BatchTopKSAE":                # use_threshold=True at inference
        f = post * (post > s["threshold"])
    else:
        f = post
    return f, f @ s["decoder.weight"].T + b_dec


@pytest.mark.parametrize("dict_class, arch", [("AutoEncoder", ReLU), ("AutoEncoderNew", ReLU),
                                              ("AutoEncoderTopK", TopK), ("BatchTopKSAE", JumpReLU),
                                              ("MatryoshkaBatchTopKSAE", JumpReLU), ("JumpReluAutoEncoder", JumpReLU)])
def test_dictionary_learning_classes_compute_what_dictionary_learning_computes(tmp_path, dict_class, arch):
    state = write_dictionary_learning(tmp_path / "ae", dict_class)
    sae = load_sae(f"dictionary_learning:{tmp_path / 'ae'}")
    assert type(sae.arch) is arch
    same(sae, *dictionary_learning_forward(dict_class, state))
    assert sae.metadata["site"] == "text.layer.3.resid"
    assert sae.metadata["model_name"] == "hf:EleutherAI/pythia-70m-deduped"
    assert sae.metadata["source"]["dict_class"] == dict_class


def test_a_batchtopk_threshold_never_calibrated_is_the_plain_relu_dictionary_learning_runs(tmp_path):
    state = write_dictionary_learning(tmp_path / "ae", "BatchTopKSAE", threshold=-1.0)
    sae = read_dictionary_learning(tmp_path / "ae")
    assert type(sae.arch) is ReLU
    same(sae, *dictionary_learning_forward("BatchTopKSAE", state))


def test_dictionary_learning_refuses_classes_an_sae_cannot_hold(tmp_path):
    write_dictionary_learning(tmp_path / "ae", "AutoEncoder")
    config = json.loads((tmp_path / "ae" / "config.json").read_text())
    config["trainer"]["dict_class"] = "GatedAutoEncoder"
    (tmp_path / "ae" / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="GatedAutoEncoder.*supported: AutoEncoder"):
        read_dictionary_learning(tmp_path / "ae")


# -- saev: one JSON header line, then torch.save(state_dict) (saev.nn.modeling.dump) -------------------------------

def write_saev(file: Path, header: dict, state: dict[str, torch.Tensor], layer: int | None = None) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "wb") as f:
        f.write((json.dumps(header) + "\n").encode())
        torch.save(state, f)
    if layer is not None:                       # the run's checkpoint/config.json (framework/train.py)
        (file.parent / "config.json").write_text(json.dumps({"train_data": {"layer": layer, "scale_norm": False}}))


def saev_state(**extra: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"W_enc": rand(D, F), "b_enc": rand(F, scale=0.1), "W_dec": rand(F, D), "b_dec": rand(D), **extra}


def saev_cfg(activation: dict) -> dict:
    return {"schema": 5, "cfg": {"d_model": D, "d_sae": F, "activation": activation, "reinit_blend": 0.8,
                                 "reinit_enc_dec_tranpose": True, "remove_parallel_grads": True,
                                 "normalize_w_dec": True}, "commit": "unknown", "lib": "1.0.0"}


def test_saev_checkpoints_compute_what_saev_computes(tmp_path):
    # schema 5, TopK: encode is activation(x W_enc + b_enc), keeping the k largest pre-activations
    s = saev_state()
    write_saev(tmp_path / "run" / "checkpoint" / "sae.pt",
               saev_cfg({"cls": "TopK", "params": {"kind": "top-k", "top_k": K, "sparsity": {"cls": "NoSparsity",
                                                                                          "params": {}}}}), s, layer=11)
    pre = X @ s["W_enc"] + s["b_enc"]
    values, indices = pre.topk(K, dim=-1)
    assert bool((values[:, -1] >= 0).all()), "the k-th pre-activation is negative: saev and mmfeatures differ there"
    sae = load_sae(f"saev:{tmp_path / 'run' / 'checkpoint'}")
    assert isinstance(sae.arch, TopK) and sae.metadata["site"] == "image.layer.11.resid"
    z = dense(values, indices)
    same(sae, z, z @ s["W_dec"] + s["b_dec"])
    # schema 5, BatchTopK: at inference a JumpReLU at the learned threshold
    s = saev_state(**{"activation.threshold": torch.tensor(0.25)})
    write_saev(tmp_path / "btk.pt", saev_cfg({"cls": "BatchTopK", "params": {"top_k": K, "momentum": 0.1}}), s)
    pre = X @ s["W_enc"] + s["b_enc"]
    z = torch.where(pre > 0.25, pre, torch.zeros_like(pre))
    sae = load_sae(tmp_path / "btk.pt")                         # detected from the header line
    assert isinstance(sae.arch, JumpReLU) and sae.metadata["site"] is None and "site=" in sae.metadata["note"]
    same(sae, z, z @ s["W_dec"] + s["b_dec"])
    # a pre-schema file (its header is the config): ReLU on (x - b_dec) W_enc + b_enc, as those versions ran
    s = saev_state()
    write_saev(tmp_path / "legacy.pt", {"d_vit": D, "exp_factor": F // D, "l1_coeff": 4e-4}, s)
    z = torch.relu((X - s["b_dec"]) @ s["W_enc"] + s["b_enc"])
    same(read_saev(tmp_path / "legacy.pt", site="image.layer.10.resid"), z, z @ s["W_dec"] + s["b_dec"])


def test_saev_trained_on_rescaled_inputs_is_refused(tmp_path):
    write_saev(tmp_path / "sae.pt", saev_cfg({"cls": "Relu", "params": {}}), saev_state(), layer=3)
    (tmp_path / "config.json").write_text(json.dumps({"data": {"layer": 3, "scale_mean": True}}))
    with pytest.raises(InputError, match=r"data\.scale_mean is true"):
        load_sae(f"saev:{tmp_path / 'sae.pt'}")
    (tmp_path / "config.json").write_text(json.dumps({"train_data": {"layer": 3, "scale_norm": True}}))
    with pytest.raises(InputError, match=r"train_data\.scale_norm is true"):
        read_saev(tmp_path / "sae.pt")


# -- layouts, sites and the wrong reader ---------------------------------------------------------------------------

def test_each_reader_names_the_layout_it_was_given(tmp_path):
    write_sparsify(tmp_path / "sp" / "layers.0")
    write_dictionary_learning(tmp_path / "dl", "AutoEncoder")
    write_saev(tmp_path / "sv" / "sae.pt", saev_cfg({"cls": "Relu", "params": {}}), saev_state())
    save_sae(SAE(D, F, TopK(k=K)), tmp_path / "mm", model_name="m", hook_name="text.layer.0.resid")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "weights.bin").write_bytes(b"\0" * 8)
    layouts = {name: detect_layout(tmp_path / name) for name in ("sp", "dl", "sv", "mm", "other")}
    assert layouts == {"sp": "sparsify-checkpoint", "dl": "dictionary_learning", "sv": "saev", "mm": "saelens",
                       "other": None}
    assert detect_layout(tmp_path / "sp" / "layers.0") == "sparsify"
    assert detect_layout(tmp_path / "sv" / "sae.pt") == "saev"
    sp = tmp_path / "sp" / "layers.0"
    with pytest.raises(InputError, match=rf"looks like an EleutherAI sparsify folder.*'sparsify:{sp}'"):
        load_sae(f"dictionary_learning:{sp}")
    with pytest.raises(InputError, match=r"looks like a dictionary_learning folder.*dictionary_learning:"):
        load_sae(f"sparsify:{tmp_path / 'dl'}")
    with pytest.raises(InputError, match=r"looks like a saev checkpoint.*saev:"):
        read_dictionary_learning(tmp_path / "sv")
    with pytest.raises(InputError, match=r"looks like a SAELens folder.*load_sae\('"):
        read_saev(tmp_path / "mm")
    with pytest.raises(InputError, match=r"is not one \(it holds \['weights.bin'\]\)"):
        read_sparsify(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="sae_weights.safetensors is missing; it looks like an EleutherAI"):
        from mmfeatures.sae import read_sae_folder

        read_sae_folder(sp)


def test_hook_names_map_to_sites_where_one_exists():
    cases = {("sparsify", "layers.6"): "text.layer.6.resid", ("sparsify", "model.layers.6.self_attn"):
             "text.layer.6.attn", ("sparsify", "transformer.h.2.mlp"): "text.layer.2.mlp",
             ("sparsify", "embed_tokens"): None, ("saelens", "blocks.6.hook_resid_post"): "text.layer.6.resid",
             ("saelens", "blocks.6.hook_resid_pre"): "text.layer.5.resid", ("saelens", "blocks.0.hook_resid_pre"):
             None, ("saelens", "blocks.6.hook_mlp_out"): "text.layer.6.mlp", ("saelens", "blocks.6.hook_resid_mid"):
             None, ("dictionary_learning", "attn_out_layer_2"): "text.layer.2.attn", ("saev", "11"):
             "image.layer.11.resid"}
    assert {case: site_from_hook(*case) for case in cases} == cases
    assert site_from_hook("saelens", "blocks.9.hook_resid_post", "clip-vit-base-patch32") == "image.layer.9.resid"


def test_a_folder_saelens_wrote_maps_its_hook_and_keeps_its_metadata(tmp_path):
    sae = SAE(D, F, TopK(k=K))
    folder = save_sae(sae, tmp_path / "s", model_name="gpt2-small", hook_name="blocks.4.hook_resid_pre")
    (folder / "mmfeatures.json").unlink()                       # as SAELens writes it: no mmfeatures header
    loaded = load_sae(folder)
    assert loaded.metadata["site"] == "text.layer.3.resid" and loaded.metadata["model_name"] == "gpt2-small"
    assert loaded.metadata["source"]["hook_name"] == "blocks.4.hook_resid_pre"
    assert loaded.metadata["sae_lens_version"] == "6.0.0"
    assert load_sae(folder, model="hf:gpt2").metadata["model_name"] == "hf:gpt2"
    mine = save_sae(sae, tmp_path / "m", model_name="hf:x/y", hook_name="text.layer.0.resid")
    with pytest.raises(InputError, match="records its own model and site"):
        load_sae(mine, site="text.layer.1.resid")


# -- SAELens releases and hub files, offline -------------------------------------------------------------------------

@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_a_release_not_in_the_cache_fails_at_once_with_the_command_that_fetches_it(hub_cache, tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match=r"HF_HUB_OFFLINE=1 is set.*hf download someone/saes "
                                                     r"--include 'blocks\.8\.hook_resid_pre' 'blocks\.8\.hook_resid_pre/\*'"):
        load_sae("saelens:someone/saes:blocks.8.hook_resid_pre")
    # the repo cached, but not this folder: the same
    save_sae(SAE(D, F, TopK(k=K)), tmp_path / "repo" / "other", model_name="m", hook_name="text.layer.0.resid")
    fill_cache(hub_cache, "someone/saes", tmp_path / "repo")
    with pytest.raises(ModelNotAvailableError, match="hf download someone/saes"):
        load_sae("saelens:someone/saes:blocks.8.hook_resid_pre")
    with pytest.raises(ModelNotAvailableError, match="hf download someone/sp --include 'layers.3'"):
        load_sae("sparsify:hf:someone/sp/layers.3")
    assert time.perf_counter() - t0 < 10
    try:
        import sae_lens  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="sae_lens is not installed.*saelens:<org>/<repo>:<folder>"):
            load_sae("saelens:gpt2-small-res-jb:blocks.8.hook_resid_pre")
    with pytest.raises(InputError, match="saelens:<release>:<sae_id>"):
        load_sae("saelens:gpt2-small-res-jb")


def test_a_cached_release_and_hub_files_load_offline(hub_cache, tmp_path):
    # a folder as SAELens wrote it before 6.0: hook_point, activation_fn_str, normalize_activations as a bool
    repo = tmp_path / "repo"
    (repo / "blocks.3.hook_resid_pre").mkdir(parents=True)
    W_enc, b_enc, W_dec, b_dec = rand(D, F), rand(F, scale=0.1), rand(F, D), rand(D)
    save_file({"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec},
              str(repo / "blocks.3.hook_resid_pre" / "sae_weights.safetensors"))
    cfg = {"model_name": "gpt2-small", "hook_point": "blocks.3.hook_resid_pre", "d_in": D, "d_sae": F,
           "dtype": "float32", "activation_fn_str": "relu", "normalize_activations": False,
           "apply_b_dec_to_input": True, "sae_lens_version": "3.5.0"}
    (repo / "blocks.3.hook_resid_pre" / "cfg.json").write_text(json.dumps(cfg))
    write_sparsify(repo / "layers.2")
    fill_cache(hub_cache, "someone/saes", repo)
    sae = load_sae("saelens:someone/saes:blocks.3.hook_resid_pre")
    z = torch.relu((X - b_dec) @ W_enc + b_enc)
    same(sae, z, z @ W_dec + b_dec)
    assert sae.metadata["site"] == "text.layer.2.resid" and sae.metadata["model_name"] == "gpt2-small"
    assert sae.metadata["source"]["repo_id"] == "someone/saes"
    assert load_sae("sparsify:hf:someone/saes/layers.2").metadata["site"] == "text.layer.2.resid"


def test_a_release_resolves_through_saelens_directory(hub_cache, tmp_path, monkeypatch):
    """SAELens's directory (faked here as the module it is; the real one in tests/test_saelens_compat.py) gives the
    repo, the folder, config overrides and the norm scaling factor that is folded into the weights."""
    import sys
    import types
    from types import SimpleNamespace

    entry = dict(repo_id="someone/saes", model="gpt2-small", conversion_func=None,
                 saes_map={"blocks.3.hook_resid_post": "l3"}, norm_scaling_factor={"blocks.3.hook_resid_post": 2.0},
                 config_overrides={"normalize_activations": "expected_average_only_in"})
    directory = {"my-release": SimpleNamespace(**entry),
                 "gemma-like": SimpleNamespace(**{**entry, "conversion_func": "gemma_2"})}
    module = types.ModuleType("sae_lens.loading.pretrained_saes_directory")
    module.get_pretrained_saes_directory = lambda: directory
    for name in ("sae_lens", "sae_lens.loading"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    sae = SAE(D, F, ReLU())
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_()
    save_sae(sae, tmp_path / "repo" / "l3", model_name="gpt2-small", hook_name="blocks.3.hook_resid_post")
    fill_cache(hub_cache, "someone/saes", tmp_path / "repo")
    loaded = load_sae("saelens:my-release:blocks.3.hook_resid_post")
    z = torch.relu((X * 2 - sae.b_dec) @ sae.W_enc + sae.b_enc)   # SAELens reads x scaled by the factor
    same(loaded, z.detach(), (z @ sae.W_dec + sae.b_dec).detach() / 2)
    assert loaded.metadata["site"] == "text.layer.3.resid"
    with pytest.raises(InputError, match="did you mean"):
        load_sae("saelens:my-release:blocks.3.hook_resid_pots")
    with pytest.raises(InputError, match="conversion 'gemma_2'.*save_model"):
        load_sae("saelens:gemma-like:blocks.3.hook_resid_post")


# -- item 4: what mmfeatures writes into cfg.json ------------------------------------------------------------------

def language_store(root: Path):
    """A tiny store of 'text.layer.2.resid' rows from examples in three languages and four concepts."""
    from mmfeatures.activations.store import ActivationStore, StoreConfig, StoreWriter

    examples = [{"id": f"{c}/{lang}", "modality": "text", "concept": c, "language": lang, "source": None}
                for c in ("dog", "cat", "sun", "sea") for lang in ("en", "de", "ja")]
    cfg = StoreConfig("hf:someone/tiny", "w", "text.layer.2.resid", "none", None, False, "fp32", "fp32", "data-fp",
                      len(examples), tuple(range(0, len(examples), 4)))
    writer = StoreWriter(root, cfg)
    writer.start(examples)
    for s in range(cfg.n_shards):
        rows = 100
        writer.write_shard(s, torch.randn(rows, D, generator=G), torch.full((rows,), 4 * s),
                           torch.arange(rows, dtype=torch.int32), torch.zeros(rows, dtype=torch.bool), None, {})
    writer.finish()
    return ActivationStore(root)


def test_a_trained_sae_records_model_site_languages_and_training_data(tmp_path):
    from mmfeatures.sae import TrainConfig, train

    store = language_store(tmp_path / "store")
    folder = train(store, TrainConfig(TopK(k=K), F, batch_size=100, total_rows=300), tmp_path / "out",
                   progress=False)[0].folder
    meta = json.loads((folder / "cfg.json").read_text())["metadata"]
    assert (meta["model_name"], meta["hook_name"], meta["site"], meta["modality"]) == \
        ("hf:someone/tiny", "text.layer.2.resid", "text.layer.2.resid", "text")
    assert meta["languages"] == ["de", "en", "ja"]
    data = meta["training_data"]
    assert (data["store_key"], data["dataset_fingerprint"], data["n_examples"], data["n_rows"], data["n_concepts"]) == \
        (store.key, "data-fp", 12, 300, 4)
    assert "text.layer.2.resid" in data["store_summary"]
    assert load_sae(folder).metadata["languages"] == ["de", "en", "ja"]
