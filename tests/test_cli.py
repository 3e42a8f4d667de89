"""The console script: every command end to end on real offline models, exit codes, config files, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmfeatures.activations import ActivationStore
from mmfeatures.cli import build_parser, main, make_config
from mmfeatures.pipeline import Record

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "mmfeatures", *args], capture_output=True, text=True, cwd=cwd,
                          env=env)


def test_models_lists_the_offline_default(capsys):
    assert main(["models"]) == 0
    assert "offline:e5-small" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["extract", "train", "analyze", "match", "steer", "report", "demo"])
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "examples:" in out and f"mmfeatures {command}" in out and "--config" in out


def test_unknown_command_is_a_usage_error_with_a_suggestion(capsys):
    r = run_cli("analyse")
    assert r.returncode == 2 and "did you mean 'analyze'" in r.stderr
    assert main([]) == 2
    assert "required: command (see `mmfeatures --help`)" in capsys.readouterr().err


def test_unknown_flag_names_the_closest_option(capsys):
    assert main(["demo", "--quik"]) == 2
    assert "--quik (did you mean --quick?)" in capsys.readouterr().err


def test_missing_required_option_and_bad_values_exit_2(capsys):
    assert main(["train"]) == 2
    assert "--store required" in capsys.readouterr().err
    assert main(["train", "--store", "x", "--width", "wide"]) == 2
    assert "--width: 'wide' is not a valid whole number" in capsys.readouterr().err
    assert main(["analyze", "--stores", "x", "--kind", "crosslingwal"]) == 2
    assert "kind 'crosslingwal'; use one of crosslingual, crossmodal" in capsys.readouterr().err
    assert main(["demo", "--n-perm", "0"]) == 2                 # checked before any work starts
    assert "n_perm = 0; use a whole number from 1 to" in capsys.readouterr().err


def test_config_file_then_flags(tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("store: /some/store\nwidth: 512\nk: 8\narch: relu\n")
    args = build_parser().parse_args(["train", "--config", str(cfg), "--k", "4"])
    job = make_config("train", args)
    assert (job.store, job.width, job.k, job.arch) == ("/some/store", 512, 4, "relu")   # the flag wins
    (tmp_path / "lists.yaml").write_text("sites: [text.embed, text.layer.1.resid]\nlanguages: en,es\nprogress: no\n")
    job = make_config("extract", build_parser().parse_args(["extract", "--config", str(tmp_path / "lists.yaml")]))
    assert job.sites == ("text.embed", "text.layer.1.resid") and job.languages == ("en", "es") and not job.progress
    (tmp_path / "typo.yaml").write_text("widht: 512\n")
    assert main(["train", "--config", str(tmp_path / "typo.yaml")]) == 2
    assert "unknown option 'widht'; did you mean 'width'?" in capsys.readouterr().err
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    assert main(["train", "--config", str(tmp_path / "list.yaml")]) == 2
    assert "must hold a mapping" in capsys.readouterr().err


def test_missing_config_file_is_a_usage_error(tmp_path, capsys):
    assert main(["demo", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml' not found" in capsys.readouterr().err


def test_unwritable_output_folder_fails_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["demo", "--quick", "--out", str(blocker / "report")]) == 1
    err = capsys.readouterr().err
    assert "cannot write to the output folder" in err and "--out" in err and "extract" not in err


def test_pipeline_of_commands_on_a_real_model(tmp_path):
    """extract -> train -> analyze -> match -> steer -> report through the console script, as a user runs it."""
    runs = tmp_path / "runs"
    r = run_cli("extract", "--model", "offline:minilm-l6", "--sites", "text.layer.3.resid", "--languages",
                "en,es,de", "--out", str(runs / "1-extract"), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "wrote:" in r.stdout
    store = Record.load(runs / "1-extract").artifact("store", "text.layer.3.resid").path
    (tmp_path / "train.yaml").write_text(f"store: {store}\nwidth: 256\nk: 8\nepochs: 2\nprogress: false\n")
    saes = []
    for seed in (0, 1):
        r = run_cli("train", "--config", str(tmp_path / "train.yaml"), "--seed", str(seed),
                    "--out", str(runs / f"2-train-{seed}"))
        assert r.returncode == 0, r.stderr
        trained = Record.load(runs / f"2-train-{seed}")
        assert trained.inputs["store"] == ActivationStore(store).key            # lineage: which store, by key
        saes.append(trained.artifact("sae").path)
    assert saes[0] != saes[1] and all((Path(s) / "cfg.json").is_file() for s in saes)
    r = run_cli("analyze", "--stores", store, "--sae", saes[0], "--n-perm", "5", "--out", str(runs / "3-analyze"))
    assert r.returncode == 0, r.stderr
    assert "multilingual" in r.stdout and (runs / "3-analyze" / "entropy.png").is_file()
    r = run_cli("match", "--store-a", store, "--store-b", store, "--sae-a", saes[0], "--sae-b", saes[1],
                "--n-perm", "3", "--out", str(runs / "4-match"))
    assert r.returncode == 0, r.stderr
    assert "median correlation" in r.stdout
    r = run_cli("steer", "--sae", saes[0], "--concept", "dog", "--strengths", "0,1", "--n-perm", "3",
                "--out", str(runs / "5-steer"))
    assert r.returncode == 0, r.stderr
    r = run_cli("report", "--folder", str(runs), "--title", "pipeline")
    assert r.returncode == 0, r.stderr
    page = (runs / "index.html").read_text()
    assert "<h1>pipeline</h1>" in page and page.count("<img") >= 4
    r = run_cli("steer", "--sae", saes[0], "--concept", "unicorn", "--out", str(runs / "6-steer"))
    assert r.returncode == 1 and "concept 'unicorn' is not in" in r.stderr


def test_report_of_an_empty_folder_names_the_fix(tmp_path, capsys):
    assert main(["report", "--folder", str(tmp_path)]) == 1
    assert "no job records" in capsys.readouterr().err


CLAIMS = ("03-crosslingual", "06-crosslingual-freedict", "11-crossmodal-tuxpaint", "12-crossmodal-tuxpaint-freedict",
          "13-crossmodal-heldout", "14-crossmodal-seen", "16-match-seed", "19-match-unrelated", "20-steer",
          "21-features-vs-neurons", "22-splice")
STATUSES = {"supported", "not supported", "inconclusive at this sample size", "cannot be tested"}


def test_quick_demo_reports_every_claim_and_reruns_from_its_records(quick_demo):
    """Every claim gets a verdict: its tests, each with a null, a baseline, an interval and its power, and a status
    the rule gives (what each verdict says where it must, or must not, be supported: tests/test_controls_*.py and
    test_falsification.py)."""
    from mmfeatures.demo import DemoConfig, run_demo

    assert quick_demo.index.is_file() and len(quick_demo.stages) == 29
    records = {s.name: s.record for s in quick_demo.stages}
    named = (*records["03-crosslingual"].features, *records["20-steer"].features)   # the features the report names
    assert records["23-dashboards"].config["features"] == list(dict.fromkeys(named))
    assert len(quick_demo.verdicts) == len(CLAIMS) and set(quick_demo.verdicts.values()) <= STATUSES
    for name in CLAIMS:
        record = records[name]
        assert record.status in STATUSES and record.tests, name
        assert (record.supported is True) == (record.status == "supported"), name
        for t in record.tests:
            assert t["reason"] or (t["power"] and t["power"]["effects"] and t["interval_over"]), (name, t)
    for name in CLAIMS[:6]:
        assert "Reference, not a target" in records[name].verdict
    for name in (*CLAIMS[:6], *CLAIMS[7:8], *CLAIMS[9:]):   # the seed baseline compares two seeds; steering may lack a
        assert "3 SAE seed(s)" in records[name].verdict, name   # feature to steer with
    for name in CLAIMS[:4]:                 # each half beyond random directions and the random-init model (image tower)
        assert sum("random-init model" in t["test"] for t in records[name].tests) >= 1, name
    seen, heldout = (records[n].scores[0]["value"] for n in ("14-crossmodal-seen", "13-crossmodal-heldout"))
    assert seen >= heldout          # the fit check (pictures the image tower learnt) is the easy case
    seed, unrelated = (records[n].tests[0]["value"] for n in ("16-match-seed", "19-match-unrelated"))
    assert seed > unrelated         # two seeds of one SAE share more than two models do
    assert records["19-match-unrelated"].tests[0]["test"] == "median best-match r beyond B's random-init copies"
    assert "3 random-init copies" in records["19-match-unrelated"].tests[0]["interval_over"]
    again = run_demo(DemoConfig(out=str(quick_demo.index.parent), quick=True, progress=True, device="cpu"))
    assert all(s.reused for s in again.stages), [s.name for s in again.stages if not s.reused]
    as_json = [json.dumps(s.record.tests, sort_keys=True) for s in quick_demo.stages]   # NaN == NaN in JSON
    assert [json.dumps(s.record.tests, sort_keys=True) for s in again.stages] == as_json


def test_demo_refuses_a_folder_holding_other_results(tmp_path, capsys):
    (tmp_path / "something-else").mkdir()
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 1
    assert "choose an empty --out" in capsys.readouterr().err


def test_an_interrupted_demo_says_so_and_resumes(quick_demo, tmp_path):
    """SIGINT mid-run: exit 1 with a message; the rerun keeps every finished stage."""
    out = tmp_path / "report"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([sys.executable, "-m", "mmfeatures", "demo", "--quick", "--no-progress", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            # a suite started in the background inherits SIGINT ignored; the demo must see it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    marker = out / "03-crosslingual" / "result.json"
    while not marker.is_file() and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    if proc.returncode == 0:
        pytest.skip("the demo finished before the interrupt arrived")
    assert proc.returncode == 1 and "interrupted" in err and "run the same command again to resume" in err
    finished = sorted(p.parent.name for p in out.glob("*/result.json"))
    assert "03-crosslingual" in finished and not (out / "index.html").exists()
    from mmfeatures.demo import DemoConfig, demo_plan
    from mmfeatures.pipeline import run, run_plan

    plan = demo_plan(DemoConfig(out=str(out), quick=True, progress=False))     # the rerun, up to one new step
    upto = max(i for i, step in enumerate(plan) if step.name in finished) + 2
    resumed = run_plan(plan[:upto], out, run, progress=False)
    assert set(finished) <= {s.name for s in resumed if s.reused} and (out / plan[upto - 1].name / "result.json").is_file()


def test_a_step_without_out_prints_what_it_wrote(tmp_path, capsys):
    table = tmp_path / "s.csv"
    table.write_text("text,language,concept\na dog,en,dog\nun perro,es,dog\n")
    assert main(["extract", "--model", "tiny:bert", "--sites", "text.layer.1.resid", "--data", str(table),
                 "--store-dir", str(tmp_path / "stores"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "wrote:" in out and str(tmp_path / "stores") in out


def test_tqdm_disable_silences_every_command(monkeypatch):
    """Issue 33: TQDM_DISABLE=1 did not reach the bars the commands draw with progress=True."""
    from mmfeatures.cli import build_parser, make_config

    argv = {"train": ["--store", "s"], "alignment": [], "extract": ["--data", "concepts", "--model", "tiny:bert"]}
    for command, rest in argv.items():
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
        assert make_config(command, build_parser().parse_args([command, *rest])).progress is True
        monkeypatch.setenv("TQDM_DISABLE", "1")
        assert make_config(command, build_parser().parse_args([command, *rest])).progress is False


def test_a_record_table_prints_aligned_and_bounded():
    from mmfeatures.cli import TERMINAL_ROWS, _text_table

    rows = [[f"row{i}", 0.123456 * i, i] for i in range(TERMINAL_ROWS + 3)]
    text = _text_table({"title": "metrics", "columns": ["split", "nmse", "l0"], "rows": rows}).splitlines()
    assert text[0] == "metrics:" and text[1].split() == ["split", "nmse", "l0"]
    assert text[3].split() == ["row1", "0.1235", "1"] and text[-1] == "  ... 3 more rows in result.json"


def test_extract_maps_a_tables_columns(tmp_path, capsys):
    """Issue 33: a JSONL with its own column names could not be read from the command line."""
    table = tmp_path / "s.jsonl"
    table.write_text('{"sentence": "a dog", "lang": "en", "label": "dog"}\n'
                     '{"sentence": "un perro", "lang": "es", "label": "dog"}\n')
    base = ["extract", "--model", "tiny:bert", "--sites", "text.layer.1.resid", "--data", str(table), "--pooling",
            "mean", "--store-dir", str(tmp_path / "stores"), "--no-progress"]
    assert main(base) == 1 and "--columns text=" in capsys.readouterr().err
    assert main([*base, "--columns", "text=sentence,language=lang,concept=label"]) == 0
    assert main([*base, "--columns", "txt=sentence"]) == 2 and "fields text, language" in capsys.readouterr().err
    assert main([*base[:6], "--data", "concepts", "--columns", "text=s"]) == 2
