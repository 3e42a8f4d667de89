"""User mistakes raise a specific mmfeatures error that names the bad value and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmfeatures as mmf
from mmfeatures.activations.inputs import as_examples
from mmfeatures.datasets import ConceptDataset
from mmfeatures.datasets.languages import suggest_language
from mmfeatures.encoders.base import resolve_device
from mmfeatures.errors import CorruptFileError, InputError
from mmfeatures.sae.modeling import ARCHS, BatchTopK, JumpReLU, ReLU, TopK, arch_name, make_arch
from mmfeatures.types import Example, Modality

# --- architecture configs -------------------------------------------------------------------------

BAD_ARCHS = [
    (lambda: TopK(k="4"), "TopK.k", "'4'", "int", "TopK(k=4)"),
    (lambda: TopK(k=2.5), "TopK.k", "2.5", "int", "TopK(k=32)"),
    (lambda: TopK(k=True), "TopK.k", "True", "int", "TopK(k=32)"),
    (lambda: TopK(k=0), "TopK.k", "0", "int", "TopK(k=32)"),
    (lambda: BatchTopK(k=-3), "BatchTopK.k", "-3", "int", "BatchTopK(k=32)"),
    (lambda: TopK(aux_k="all"), "TopK.aux_k", "'all'", "int", "TopK(aux_k="),
    (lambda: TopK(aux_k=1.5), "TopK.aux_k", "1.5", "int", "TopK(aux_k="),
    (lambda: TopK(aux_coefficient=None), "TopK.aux_coefficient", "None", "float", "TopK(aux_coefficient="),
    (lambda: ReLU(l1_coefficient="x"), "ReLU.l1_coefficient", "'x'", "float", "ReLU(l1_coefficient=5.0)"),
    (lambda: ReLU(l1_coefficient=-1.0), "ReLU.l1_coefficient", "-1.0", "float", "ReLU(l1_coefficient="),
    (lambda: ReLU(l1_coefficient=float("nan")), "ReLU.l1_coefficient", "nan", "float", "ReLU(l1_coefficient="),
    (lambda: JumpReLU(l0_coefficient="1"), "JumpReLU.l0_coefficient", "'1'", "float", "JumpReLU(l0_coefficient=1.0)"),
    (lambda: JumpReLU(bandwidth=[0.1]), "JumpReLU.bandwidth", "[0.1]", "float", "JumpReLU(bandwidth="),
    (lambda: JumpReLU(init_threshold=0), "JumpReLU.init_threshold", "0", "float", "JumpReLU(init_threshold="),
]


@pytest.mark.parametrize(("make", "field", "value", "expected", "fix"), BAD_ARCHS)
def test_bad_architecture_fields_name_field_value_type_and_fix(make, field, value, expected, fix):
    with pytest.raises(InputError) as info:
        make()
    assert isinstance(info.value, ValueError)  # callers catching ValueError keep working
    message = str(info.value)
    assert field in message and f"got {value} (" in message and expected in message, message
    assert f"pass e.g. {fix}" in message, message


def test_architecture_names_are_one_vocabulary():
    assert set(ARCHS) == {"relu", "topk", "batchtopk", "matryoshka", "jumprelu"}
    for name, cls in ARCHS.items():
        arch = make_arch(name, k=8, l1=0.5 if name in ("relu", "jumprelu") else None)
        assert type(arch) is cls and arch_name(arch) == name
    with pytest.raises(InputError, match="drop it for TopK-style"):
        make_arch("batchtopk", k=8, l1=0.5)                   # ignored before, yet recorded in the step's config
    assert make_arch("topk", k=8).k == 8 and make_arch("ReLU", l1=2.0).l1_coefficient == 2.0
    assert make_arch("jumprelu", l1=0.3).l0_coefficient == 0.3 and make_arch("relu") == ReLU()
    assert make_arch("jumprelu", k=12).target_l0 == 12.0 and make_arch("matryoshka", k=8).k == 8
    with pytest.raises(InputError, match=r"unknown SAE architecture 'topkk'; did you mean 'topk'\? known: relu, topk"):
        make_arch("topkk")
    with pytest.raises(InputError, match="unknown SAE architecture 'sparse'; known: relu, topk, batchtopk, matryoshka, jumprelu"):
        make_arch("sparse")
    with pytest.raises(InputError, match="TopK.k must be"):
        make_arch("topk", k="8")
    with pytest.raises(InputError, match="is not an SAE architecture; use one of ReLU, TopK"):
        arch_name("topk")


# --- devices --------------------------------------------------------------------------------------

BAD_DEVICES = ["gpu", "cuda:x", "cuda:", "cpu0", "tpu", ""]


# ids are not the values: conftest skips items with a 'gpu' keyword on machines without CUDA
@pytest.mark.parametrize("device", BAD_DEVICES, ids=[f"bad-device-{i}" for i in range(len(BAD_DEVICES))])
def test_a_string_that_is_no_device_names_it_and_the_choices(device):
    with pytest.raises(InputError, match=f"device {device!r} is not a device; use auto, cpu, cuda or cuda:N"):
        resolve_device(device)


def test_devices_that_exist_resolve():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(InputError, match=r"device 0 \(int\) is not a device"):
        resolve_device(0)


def test_unavailable_cuda_names_the_device_and_suggests_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1", torch.device("cuda:0")):
        with pytest.raises(InputError, match=r"device 'cuda(:\d)?' asked for, but this machine has no usable CUDA "
                                             r"device; use device='cpu', or 'auto'"):
            resolve_device(device)
    assert resolve_device("auto").type in ("cpu", "mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(InputError, match=r"'cuda:5' asked for, but this machine has 2 CUDA device\(s\) "
                                         r"\(cuda:0..cuda:1\)"):
        resolve_device("cuda:5")


# --- input lists ----------------------------------------------------------------------------------

def test_none_and_single_items_are_not_input_lists():
    with pytest.raises(InputError, match="inputs is None; pass a list of texts, images or Examples"):
        as_examples(None)
    with pytest.raises(InputError, match="inputs is a single Image; pass a list"):
        as_examples(Image.new("RGB", (4, 4)))


def test_a_missing_image_path_names_the_index_the_path_and_the_fix(tmp_path):
    missing = str(tmp_path / "cat.png")
    with pytest.raises(InputError, match=rf"input item 1 \(id '1'\) is the image path '{re.escape(missing)}', which does not "
                                         r"exist; fix the path, or pass Example\(\.\.\., modality=TEXT\)"):
        as_examples(["a dog", missing])
    with pytest.raises(InputError, match=r"input item 0 .*'dog\.JPG', which does not exist; fix the path"):
        as_examples(["dog.JPG"])
    with pytest.raises(InputError, match=r"input item 0 .*'nope\.webp', which does not exist; fix the path$"):
        as_examples([Path("nope.webp")])
    with pytest.raises(InputError, match=r"input item 2 \(id 'x'\) is the image path .*gone\.png'.*fix the path in "
                                         r"the Example's content"):
        as_examples(["a", "b", Example("x", Modality.IMAGE, tmp_path / "gone.png")])
    with pytest.raises(InputError, match="input item 0 .* which does not exist"):
        as_examples(["whatever.txt"], modality="image")


def test_texts_that_mention_files_stay_texts_and_present_images_pass(tmp_path):
    texts = as_examples(["see cat.png", "photo of\na.jpg", "cat.png"], modality="text")
    assert [e.modality for e in texts] == [Modality.TEXT] * 3
    assert as_examples(["see cat.png"])[0].modality is Modality.TEXT
    assert as_examples([Example("t", Modality.TEXT, "cat.png")])[0].modality is Modality.TEXT
    good, bad = tmp_path / "ok.png", tmp_path / "broken.png"
    Image.new("RGB", (4, 4)).save(good)
    bad.write_bytes(b"not a png")  # present but unreadable: left to extract's on_error
    exs = as_examples([str(good), bad, Example("e", Modality.IMAGE, str(good))])
    assert [e.modality for e in exs] == [Modality.IMAGE] * 3


def test_extract_refuses_a_missing_path_even_when_skipping(tmp_path):
    enc = mmf.load_encoder("tiny:clip")
    with pytest.raises(InputError, match="missing.png', which does not exist"):
        mmf.extract(enc, [str(tmp_path / "missing.png")], ["image.embed"], store_dir=tmp_path, on_error="skip",
                    progress=False)


# --- built-in data languages ----------------------------------------------------------------------

@pytest.mark.parametrize(("code", "meant"), [("jp", "ja"), ("cn", "zh"), ("kr", "ko"), ("JA", "ja"), ("en-GB", "en"),
                                             ("esp", "es")])
def test_builtin_language_typos_suggest_the_code(code, meant):
    with pytest.raises(InputError, match=rf"unknown language code '{code}' for the built-in data; did you mean "
                                         rf"'{meant}'\? available: en, es, de"):
        ConceptDataset.builtin(["concepts"], languages=["en", code])


def test_builtin_languages_other_mistakes():
    with pytest.raises(InputError, match=r"unknown language code 'se' for the built-in data; available:"):
        ConceptDataset.builtin(["concepts"], languages=["se"])  # Swedish is 'sv', absent: no misleading 'sw'
    with pytest.raises(InputError, match=r"languages='ja' is a single string; pass a list, e.g. \['ja'\]"):
        ConceptDataset.builtin(["concepts"], languages="ja")
    with pytest.raises(InputError, match="languages is empty; give at least one of en, es"):
        ConceptDataset.builtin(["concepts"], languages=[])


def test_select_names_a_language_no_example_has():
    ds = ConceptDataset.builtin(["concepts"])
    with pytest.raises(InputError, match=r"unknown language code 'jp' for dataset 'builtin' \(no example has it\); "
                                         r"did you mean 'ja'\? available: ar, de"):
        ds.select(languages=["en", "jp"])
    assert ds.select(languages=["ja"]).languages == ("ja",)


def test_suggest_language_table_then_spelling():
    assert [suggest_language(c, ["ja", "zh", "ko", "el", "da", "sv", "uk", "cs", "pt"])
            for c in ("jp", "cn", "kr", "gr", "dk", "se", "ua", "cz")] == ["ja", "zh", "ko", "el", "da", "sv", "uk", "cs"]
    assert suggest_language("jp", ["pt", "ja"]) == "ja"  # difflib alone ties 'pt' and 'ja'
    assert suggest_language("xx", ["en"]) is None and suggest_language(None, ["en"]) is None


# --- checkpoints ----------------------------------------------------------------------------------

def test_garbled_and_truncated_emojiclip_checkpoints_name_the_file_and_the_fix(tmp_path):
    from mmfeatures.emojiclip.train import load_checkpoint

    garbled = tmp_path / "checkpoint.pt"
    garbled.write_bytes(b"\x00garbage" * 10)
    where = re.escape(str(garbled))
    with pytest.raises(CorruptFileError, match=rf"{where}: not a readable emoji-clip training checkpoint .*"
                                               rf"delete it \(rm {where}\) to restart training from step 0"):
        load_checkpoint(garbled)
    truncated = tmp_path / "truncated.pt"
    torch.save({"meta": "{}", "model": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(CorruptFileError, match="truncated.pt: not a readable .*delete it"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": np.zeros(3).tolist()}, foreign)  # a torch file, but not our checkpoint
    with pytest.raises(CorruptFileError, match="foreign.pt: not a readable .*KeyError"):
        load_checkpoint(foreign)
