"""The console entry point: exit codes and the demo's real output."""

from __future__ import annotations

import subprocess
import sys

from mmfeatures.cli import main


def test_models_lists_the_offline_default(capsys):
    assert main(["models"]) == 0
    assert "offline:e5-small" in capsys.readouterr().out


def test_demo_prints_real_multilingual_activations(capsys, tmp_path):
    assert main(["demo", "--device", "cpu", "--store-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "offline:e5-small" in out and "text.layer.11.resid" in out and "hi" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("text.")]
    same, other = float(rows[-1][3]), float(rows[-1][4])
    assert same > other  # translations of one sentence sit closer than other sentences


def test_bad_layer_is_a_failure_that_names_the_fix(capsys):
    assert main(["demo", "--layers", "0,40"]) == 1
    assert "drop [40]" in capsys.readouterr().err


def test_usage_error_exits_2():
    r = subprocess.run([sys.executable, "-m", "mmfeatures", "demo", "--no-such-flag"], capture_output=True, text=True)
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr


def test_demo_is_resumable(tmp_path):
    from mmfeatures.demo import DemoConfig, run_demo

    cfg = DemoConfig(layers=(0, 11), device="cpu", store_dir=str(tmp_path), progress=False)
    first, second = run_demo(cfg), run_demo(cfg)
    assert not first.reused and second.reused
    assert [s.same_concept_cos for s in first.sites] == [s.same_concept_cos for s in second.sites]
