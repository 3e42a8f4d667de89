"""Bad input at the command line and in step configs: each names the value and the fix, exit 2 (usage) or 1."""

from __future__ import annotations

import json
import warnings

import pytest

from mmfeatures.cli import main
from mmfeatures.pipeline import AnalyzeStep, MatchStep, Record, SteerStep, run
from mmfeatures.pipeline.record import Artifact


def err(capsys) -> str:
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["extract", "--device", "gpu"], "device 'gpu'"),
    (["train", "--store", "x", "--device", "gpu"], "device 'gpu'"),
    (["analyze", "--stores", "x", "--ids", "("], r"ids '\(' is not a regular expression"),
    (["analyze", "--stores", "x", "--subset", "held-out"], "subset 'held-out'; use one of heldout-emoji, seen-emoji, all"),
    (["train", "--store", "x", "--arch", "topkk"], "did you mean 'topk'"),
    (["match", "--store-a", "a", "--store-b", "b", "--n-perm", "0"], "n_perm = 0"),
])
def test_bad_values_are_usage_errors_before_any_work(capsys, argv, message):
    import re

    assert main(argv) == 2
    assert re.search(message, err(capsys))


@pytest.mark.parametrize("yaml, message", [
    ("batch_size: 8.7\n", "--batch-size: 8.7 is not a valid whole number"),
    ("width: 64.9\nstore: x\n", "--width: 64.9 is not a valid whole number"),
    ("store_dir: [a, b]\n", "--store-dir: ['a', 'b'] is a list; give one string"),
    ("progress: maybe\n", "--progress: 'maybe' is not a valid true/false"),
    ("sites: 3\n", "--sites: 3 is not a comma-separated list"),
])
def test_yaml_values_of_the_wrong_type_are_refused_not_coerced(tmp_path, capsys, yaml, message):
    command = "train" if "width" in yaml else "extract"
    (tmp_path / "c.yaml").write_text(yaml)
    assert main([command, "--config", str(tmp_path / "c.yaml")]) == 2
    assert message in err(capsys)


def test_unwritable_store_and_sae_folders_are_refused_before_loading_a_model(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["extract", "--store-dir", str(blocker / "stores")]) == 2
    assert "cannot write to the output folder" in (message := err(capsys)) and "with --store-dir" in message
    assert main(["train", "--store", "x", "--sae-dir", str(blocker / "saes")]) == 2
    assert "cannot write to the output folder" in (message := err(capsys)) and "with --sae-dir" in message


def test_unknown_language_for_the_built_in_data_suggests_one(tmp_path, capsys):
    assert main(["extract", "--languages", "jp", "--out", str(tmp_path / "x"), "--no-progress"]) == 1
    assert "did you mean 'ja'" in err(capsys)


def test_out_holding_another_steps_results_is_refused(tmp_path, capsys):
    folder = tmp_path / "results"
    Record("match", "an earlier match", {}).save(folder.mkdir() or folder)
    before = (folder / "result.json").read_text()
    assert main(["steer", "--sae", "x", "--out", str(folder)]) == 1
    message = err(capsys)
    assert "holds the results of `mmfeatures match`, not steer" in message and "another --out" in message
    assert (folder / "result.json").read_text() == before                    # untouched


def test_too_few_permutations_warn_with_the_floor_of_p():
    with pytest.warns(UserWarning, match=r"n_perm = 5: a permutation p-value is at least 1/\(5\+1\) = 0.167"):
        AnalyzeStep(stores=("x",), n_perm=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MatchStep(store_a="a", store_b="b", n_perm=19)                      # 1/20 = 0.05 reaches the level


def test_a_step_that_is_not_a_step_is_named():
    from mmfeatures.errors import InputError

    with pytest.raises(InputError, match="dict is not a pipeline step; use one of ExtractStep"):
        run({"model": "offline:e5-small"})
    with pytest.raises(InputError, match="n_perm = 'many'"):
        SteerStep(sae="x", n_perm="many")


@pytest.mark.parametrize("name, message", [("../../etc/passwd.png", "outside its own folder"),
                                           ("/tmp/figure.png", "outside its own folder"),
                                           ("missing.png", "is missing")])
def test_report_refuses_figures_outside_their_folder(tmp_path, capsys, name, message):
    folder = tmp_path / "runs" / "1-step"
    folder.mkdir(parents=True)
    Record("analyze", "t", {}, claim="c", figures=({"file": name, "caption": "x"},)).save(folder)
    assert main(["report", "--folder", str(tmp_path / "runs")]) == 1
    assert message in err(capsys)


def test_report_encodes_figure_names_for_urls(tmp_path):
    from mmfeatures.report import ReportJob, render_report

    folder = tmp_path / "runs" / "1 step #1"
    folder.mkdir(parents=True)
    (folder / "a b%.png").write_bytes(b"\x89PNG")
    Record("analyze", "t", {}, claim="c", figures=({"file": "a b%.png", "caption": "x"},),
           artifacts=(Artifact("sae", "/x", "k"),)).save(folder)
    page = render_report(ReportJob(str(tmp_path / "runs"))).read_text()
    assert 'src="1%20step%20%231/a%20b%25.png"' in page


def test_a_damaged_record_is_named(tmp_path, capsys):
    folder = tmp_path / "runs" / "1-step"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"kind": "mmfeatures-job"})[:-5])
    assert main(["report", "--folder", str(tmp_path / "runs")]) == 1
    assert "result.json is damaged (not valid JSON" in err(capsys)
