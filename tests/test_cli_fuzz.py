"""A fuzz test over the command line: every option of every command, given each of a table of bad values, ends in a
message and an exit code (2 for a usage error, 1 for an error while running), never a raw traceback or a hang.

The other options are set so that a run which gets past its checks fails fast on a missing input (a store, an SAE,
a data file, a model) instead of starting real work."""

from __future__ import annotations

import dataclasses

import pytest

from mmfeatures.cli import COMMANDS, _load, main

BAD = ["", "nan", "-1", "0", "abc", "1e400", "99999999999", ",", "x,x", "\u00e9\u4e00"]
"""Empty, not a number, negative, zero, a word, overflow, huge, an empty list, a repeat, non-ASCII."""

FAST_FAIL = {"extract": {"data": "missing.csv", "model": "tiny:bert"}, "alignment": {"model": "nosuch:model"},
             "demo": {"store_dir": "blocked/stores", "out": "blocked/out"}, "report": {"folder": "missing-folder"},
             "inspect": {"features": "1"}}
"""Options that stop a command before real work, unless they are the one being fuzzed."""


def cases():
    for command, (cls, *_) in COMMANDS.items():
        for f in dataclasses.fields(_load(cls)):
            yield pytest.param(command, f.name, id=f"{command}-{f.name}")


@pytest.mark.parametrize("command, option", list(cases()))
def test_every_bad_value_of_every_option_ends_in_a_message(tmp_path, monkeypatch, capsys, command, option):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocked").write_text("")                       # a file where a folder is wanted
    cls = _load(COMMANDS[command][0])
    base = {f.name: "x" for f in dataclasses.fields(cls) if f.metadata.get("required")}
    base |= FAST_FAIL.get(command, {})
    if "out" in base or any(f.name == "out" for f in dataclasses.fields(cls)):
        base.setdefault("out", "runs/out")
    for value in BAD:
        options = {**base, option: value}
        argv = [command]
        for name, v in options.items():
            argv += [f"--{name.replace('_', '-')}", v]
        code = main(argv)                                      # an exception escaping main fails the test
        err = capsys.readouterr().err
        assert code in (1, 2), (argv, code, err)
        assert "Traceback" not in err and err.startswith("mmfeatures"), (argv, err)
