"""No code path of mmfeatures unpickles arbitrary objects: a planted file must never run code.

A static check parses every module, and a planted checkpoint shows the emoji-clip loader refusing one.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
import torch

from mmfeatures.errors import CorruptFileError

PACKAGE = Path(__file__).resolve().parents[1] / "mmfeatures"
PICKLERS = {"pickle", "_pickle", "cPickle", "dill", "joblib", "cloudpickle", "shelve"}


def _aliases(tree: ast.AST) -> tuple[set[str], set[str], set[str]]:
    """Local names bound to the torch module, to numpy, and to torch.load itself."""
    torch_names, numpy_names, load_names = {"torch"}, {"np", "numpy"}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "torch":
                    torch_names.add(a.asname or "torch")
                if a.name == "numpy":
                    numpy_names.add(a.asname or "numpy")
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            load_names |= {a.asname or a.name for a in node.names if a.name == "load"}
    return torch_names, numpy_names, load_names


def _root(expr: ast.expr) -> str | None:
    while isinstance(expr, ast.Attribute):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_calls(source: str) -> list[str]:
    """Each pickle risk in one module's source, as 'line: what'."""
    tree = ast.parse(source)
    torch_names, numpy_names, load_names = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLERS]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PICKLERS:
            found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            is_torch_load = (isinstance(func, ast.Attribute) and func.attr == "load" and _root(func) in torch_names
                             and not (isinstance(func.value, ast.Attribute) and func.value.attr == "jit")) or (
                isinstance(func, ast.Name) and func.id in load_names)
            if is_torch_load:
                flag = _keyword(node, "weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    found.append(f"{node.lineno}: torch.load without weights_only=True")
            if isinstance(func, ast.Attribute) and func.attr == "load" and _root(func) in numpy_names:
                flag = _keyword(node, "allow_pickle")
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                    found.append(f"{node.lineno}: np.load with allow_pickle")
            if isinstance(func, ast.Attribute) and func.attr in ("read_pickle", "to_pickle"):
                found.append(f"{node.lineno}: .{func.attr}")
    return found


def test_the_checker_sees_every_kind_of_risk():
    bad = """
import pickle
import dill as d
from joblib import load
import torch as T
import numpy
from torch import load as tl
T.load(p)
torch.load(p, weights_only=False)
torch.load(p, weights_only=flag)
tl(p)
numpy.load(p, allow_pickle=True)
df.read_pickle(p)
"""
    assert len(unsafe_calls(bad)) == 9, unsafe_calls(bad)
    good = """
import torch
import numpy as np
torch.load(p, map_location="cpu", weights_only=True)
torch.jit.load(p)
np.load(p)
np.load(p, allow_pickle=False)
json.load(f)
"""
    assert unsafe_calls(good) == []


def test_no_module_can_unpickle_arbitrary_objects():
    problems = [f"{path.relative_to(PACKAGE.parent)}:{hit}" for path in sorted(PACKAGE.rglob("*.py"))
                for hit in unsafe_calls(path.read_text(encoding="utf-8"))]
    assert not problems, "pickle risks (use torch.load(..., weights_only=True), JSON or safetensors):\n" + \
        "\n".join(problems)


class _Planted:
    """Unpickling this runs exec(...), which creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _plant(path: Path, marker: Path, zipped: bool) -> Path:
    blob = {"meta": _Planted(marker), "model": {}, "optim": {}, "logit_scale": torch.zeros(()), "gen": torch.zeros(1)}
    if zipped:
        torch.save(blob, path)  # the format torch.save writes today
    else:
        path.write_bytes(pickle.dumps(blob))  # a bare pickle, as older torch versions wrote
    return path


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("zipped", [True, False])
def test_a_planted_checkpoint_is_refused_without_running_code(tmp_path, zipped):
    from mmfeatures.emojiclip.train import load_checkpoint

    armed = tmp_path / "proof"
    proof = _plant(tmp_path / "proof.pt", armed, zipped)
    if zipped:
        torch.load(proof, weights_only=False)
    else:
        pickle.loads(proof.read_bytes())
    assert armed.exists(), "the planted file must really run code when unpickled, or this test proves nothing"

    marker = tmp_path / "pwned"
    path = _plant(tmp_path / "checkpoint.pt", marker, zipped)
    with pytest.raises(CorruptFileError, match=r"checkpoint.pt: not a readable emoji-clip training checkpoint .*"
                                               r"delete it"):
        load_checkpoint(path)
    assert not marker.exists()


def test_checkpoints_round_trip_as_tensors_and_json(tmp_path):
    from mmfeatures.emojiclip.train import TrainConfig, load_checkpoint, save_checkpoint
    from mmfeatures.encoders.emojiclip import ImageTower, ImageTowerConfig

    config = TrainConfig(steps=3, tower=ImageTowerConfig(width=32, layers=1, heads=2))
    model = ImageTower(config.tower)
    scale = torch.nn.Parameter(torch.tensor(3.0))
    optim = torch.optim.AdamW([*model.parameters(), scale], lr=1e-3)
    sum(p.sum() for p in model.parameters()).backward()
    optim.step()
    gen = torch.Generator().manual_seed(5)
    state = {"step": 2, "curve": [{"step": 2, "loss": 1.5}], "seconds": 0.25}
    save_checkpoint(tmp_path / "c.pt", config, model, optim, scale, gen, state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back.state == state and back.config["tower"]["width"] == 32 and back.config["steps"] == 3
    assert all(torch.equal(v, back.model[k]) for k, v in model.state_dict().items())
    assert torch.equal(back.gen, gen.get_state()) and float(back.logit_scale) == 3.0
    fresh = torch.optim.AdamW([*ImageTower(config.tower).parameters(), torch.nn.Parameter(torch.tensor(0.0))])
    fresh.load_state_dict(back.optim)
    assert fresh.state_dict()["param_groups"][0]["lr"] == 1e-3
