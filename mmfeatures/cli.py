"""`mmfeatures <command>`: every command wraps one library function that takes a frozen config.

Options come from flags or from `--config file.yaml` (flags win). Exit codes: 0 success, 2 usage error,
1 failure; every error message names the fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import signal
import sys
import typing
from pathlib import Path
from typing import Any

from mmfeatures.errors import MMFeaturesError

COMMANDS: dict[str, tuple[str, str, str, str]] = {
    # name: (module:config class, module:function, help, examples); every step runs through pipeline.run
    "extract": ("mmfeatures.pipeline:ExtractStep", "mmfeatures.pipeline:run", "activations into resumable stores",
                "mmfeatures extract --model offline:e5-small --sites text.layer.8.resid --languages en,es,ja\n"
                "  mmfeatures extract --model offline:e5-emoji-clip --data emoji --sites image.embed,text.embed "
                "--pooling mean\n  mmfeatures extract --data my_sentences.csv --config extract.yaml"),
    "train": ("mmfeatures.pipeline:TrainStep", "mmfeatures.pipeline:run", "train an SAE (or one per seed) on a store",
              "mmfeatures train --store STORE --width 1536 --k 16 --out runs/e5/train\n"
              "  mmfeatures train --store STORE --seed 0 --seeds 1,2   # three SAEs, one pass over the store\n"
              "  mmfeatures train --store STORE --arch relu --l1 5 --epochs 10"),
    "eval": ("mmfeatures.pipeline:EvalStep", "mmfeatures.pipeline:run",
             "how good an SAE is: reconstruction, sparsity, k-sparse probes, splice",
             "mmfeatures eval --sae SAE --store HELD_OUT_STORE --out runs/e5/eval\n"
             "  mmfeatures eval --sae data:e5-small-layer8-seed0 --store STORE --ks 1,5 --no-splice"),
    "inspect": ("mmfeatures.pipeline:InspectStep", "mmfeatures.pipeline:run",
                "feature dashboards: a page per feature and an index with search (and a Neuronpedia export)",
                "mmfeatures inspect --sae data:e5-small-layer8-seed0 --store STORE --features 12,40 --out runs/e5/inspect\n"
                "  mmfeatures inspect --sae SAE --store TEXT_STORE --beside IMAGE_STORE --features 7 --neuronpedia\n"
                "  mmfeatures inspect --sae SAE_A --store STORE_A --partner-sae SAE_B --partner-store STORE_B "
                "--features 3"),
    "analyze": ("mmfeatures.pipeline:AnalyzeStep", "mmfeatures.pipeline:run",
                "cross-lingual or cross-modal consistency, with nulls",
                "mmfeatures analyze --stores STORE --sae SAE --kind crosslingual --out runs/e5/crosslingual\n"
                "  mmfeatures analyze --stores IMAGE_STORE,TEXT_STORE --sae SAE --kind crossmodal"),
    "match": ("mmfeatures.pipeline:MatchStep", "mmfeatures.pipeline:run", "match units across models, with nulls",
              "mmfeatures match --store-a STORE_A --store-b STORE_B --sae-a SAE_A --sae-b SAE_B --out runs/x/match"),
    "steer": ("mmfeatures.pipeline:SteerStep", "mmfeatures.pipeline:run", "clamp a concept's feature, against random ones",
              "mmfeatures steer --sae SAE --concept dog --strengths 0,1,3,5 --out runs/e5/steer"),
    "fidelity": ("mmfeatures.pipeline:FidelityStep", "mmfeatures.pipeline:run",
                 "splice SAEs into the model, against zero- and mean-ablation",
                 "mmfeatures fidelity --saes SAE_A,SAE_B --names k16,k32 --out runs/e5/fidelity"),
    "alignment": ("mmfeatures.pipeline:AlignmentStep", "mmfeatures.pipeline:run",
                  "where translations meet, layer by layer",
                  "mmfeatures alignment --model offline:e5-small --layers 0,3,6,9,11 --out runs/e5/alignment"),
    "report": ("mmfeatures.report:ReportJob", "mmfeatures.report:render_report",
               "render a folder of job results as index.html",
               "mmfeatures report --folder runs/e5 --title 'My study'"),
    "demo": ("mmfeatures.demo:DemoConfig", "mmfeatures.demo:run_demo",
             "the main job on the offline defaults, ending in reports/demo/index.html",
             "mmfeatures demo                 # a rerun reuses everything; measured times: docs/demo.md\n"
             "  mmfeatures demo --quick         # 6 languages, what the tests run\n"
             "  mmfeatures demo --out /tmp/demo --device cuda"),
}


class UsageError(Exception):
    """A bad command line or config file (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(message)


def _load(ref: str) -> Any:
    import importlib

    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """``value`` (a flag string or a YAML value) as the field's type, strictly: a YAML 8.7 is not an int, a
    list is not a string; UsageError naming the field, the value and what it should be."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("", "none", "null"))):
        return None
    base = args[0] if optional else hint
    flag = f"--{name.replace('_', '-')}"
    if typing.get_origin(base) is tuple:
        item = typing.get_args(base)[0]
        if isinstance(value, str):
            items = [x.strip() for x in value.split(",") if x.strip() != ""]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise UsageError(f"{flag}: {value!r} is not a comma-separated list or a YAML list")
        return tuple(_scalar(flag, item, x) for x in items)
    return _scalar(flag, base, value)


def _scalar(flag: str, kind: type, value: Any) -> Any:
    name = {int: "whole number", float: "number", bool: "true/false", str: "string"}.get(kind, str(kind))
    bad = UsageError(f"{flag}: {value!r} is not a valid {name}")
    if isinstance(value, (list, tuple, dict)):
        raise UsageError(f"{flag}: {value!r} is a {type(value).__name__}; give one {name}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1", "false", "no", "0"):
            return str(value).lower() in ("true", "yes", "1")
        raise bad
    if kind is int:
        if isinstance(value, bool) or isinstance(value, float):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        raise bad
    if kind is float:
        if isinstance(value, bool):
            raise bad
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad from None
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad
        return str(value)
    raise bad


def _read_config(path: str, cls: type) -> dict[str, Any]:
    import yaml

    file = Path(path)
    if not file.is_file():
        raise UsageError(f"config file {path!r} not found; check the path (it is relative to {Path.cwd()})")
    class _Strict(yaml.SafeLoader):
        """safe_load, but a key given twice is an error (plain YAML keeps the last one silently)."""

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = str(self.construct_object(key_node, deep=deep)).replace("-", "_")
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"option {key!r} is given twice",
                                                            key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_Strict) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"config file {path} is not valid YAML: {e}") from None
    except (UnicodeDecodeError, OSError) as e:
        raise UsageError(f"config file {path} cannot be read as UTF-8 text ({e}); give a YAML file of option: "
                         "value lines") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of option: value, not {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in names:
            close = difflib.get_close_matches(name, names, 1)
            raise UsageError(f"config file {path}: unknown option {key!r}"
                             + (f"; did you mean {close[0]!r}?" if close else f"; options are {', '.join(names)}"))
        out[name] = value
    return out


def _add_options(p: argparse.ArgumentParser, cls: type) -> None:
    p.add_argument("--config", metavar="FILE.yaml", help="read options from a YAML file (flags override it)")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = f"--{f.name.replace('_', '-')}"
        default = "required" if f.metadata.get("required") else f.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default)) or "all"
        text = f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")   # argparse formats help
        if hints[f.name] is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=text)
        else:
            p.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, metavar=f.name.upper(), help=text)


def build_parser() -> argparse.ArgumentParser:
    from mmfeatures import __version__

    examples = "\n".join(f"  {c.splitlines()[0]}" for _, _, _, c in COMMANDS.values())
    p = _Parser(prog="mmfeatures", description=__doc__.splitlines()[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=f"examples:\n  mmfeatures models\n{examples}\n\n`mmfeatures <command> --help` lists its "
                       "options. Docs: docs/cli.md")
    p.add_argument("--version", action="version", version=f"mmfeatures {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="command", parser_class=_Parser)
    sub.add_parser("models", help="list registered models", description="List the registered models.")
    for name, (cls_ref, _, text, example) in COMMANDS.items():
        cls = _load(cls_ref)
        s = sub.add_parser(name, help=text, description=(cls.__doc__ or text).strip().splitlines()[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=f"examples:\n  {example}")
        _add_options(s, cls)
    t = sub.add_parser("train-embedded", help="retrain offline:e5-emoji-clip's image tower and write its card",
                       epilog="about 25 minutes on 2 CPU cores; resumable (rerun the same command)")
    t.add_argument("--out", default=None, help="output folder (default: the repository's data/models)")
    t.add_argument("--work", default=None, help="checkpoint folder (default: user cache, keyed by the config)")
    t.add_argument("--steps", type=int, default=None, help="training steps (default 1700)")
    t.add_argument("--seed", type=int, default=None, help="seed for the split, init and augmentation (default 0)")
    d = sub.add_parser("data", help="fetch the corpora from Debian's archive into the user cache; show their cards",
                       description="LibreOffice's help (a parallel corpus) and Tux Paint's stamps (pictures with "
                                   "captions), fetched with apt-get; see docs/data.md",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  mmfeatures data fetch\n  mmfeatures data fetch --languages en,de "
                              "--only libreoffice\n  mmfeatures data card")
    actions = d.add_subparsers(dest="action", required=True, metavar="action", parser_class=_Parser)
    for action, text in (("fetch", "download and unpack what the cache lacks (resumable)"),
                         ("card", "print the data cards (source package, version, licence, counts)")):
        a = actions.add_parser(action, help=text, description=text)
        a.add_argument("--languages", default=None, help="LibreOffice help languages, comma-separated (default: "
                       "the built-in languages it has: all but ar, fa and sw)")
        a.add_argument("--only", choices=("libreoffice", "tuxpaint", "freedict", "general"), default=None,
                       help="one corpus (default: all; general is fortunes plus the others' parts it reads)")
    return p


def make_config(command: str, args: argparse.Namespace) -> Any:
    """The command's frozen config from its defaults, the config file, then the flags."""
    cls = _load(COMMANDS[command][0])
    hints = typing.get_type_hints(cls)
    values = _read_config(args.config, cls) if getattr(args, "config", None) else {}
    values.update({f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})
    values = {k: _coerce(k, hints[k], v) for k, v in values.items()}
    if "progress" in hints and os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes"):
        values["progress"] = False                     # tqdm's own switch silences every bar a command draws
    missing = [f.name for f in dataclasses.fields(cls) if f.metadata.get("required") and values.get(f.name) in (None, ())]
    if missing:
        raise UsageError(" and ".join(f"--{m.replace('_', '-')}" for m in missing) + " required (as a flag, or in "
                         "the --config file); see `mmfeatures " + command + " --help`")
    try:
        return cls(**values)
    except (MMFeaturesError, ValueError) as e:
        raise UsageError(str(e)) from None


def _usage_hint(message: str, argv: list[str]) -> str:
    """Add 'did you mean' to argparse's messages for unknown commands and flags."""
    names = ["models", "train-embedded", "data", *COMMANDS]
    if "invalid choice" in message and not message.startswith("argument command"):
        return f"{message}; see `mmfeatures {' '.join(argv[:1])} --help`"      # `data`'s action or --only
    if "invalid choice" in message:
        bad = message.split("'")[1] if "'" in message else ""
        close = difflib.get_close_matches(bad, names, 1)
        return f"unknown command {bad!r}" + (f"; did you mean {close[0]!r}?" if close else "") + \
            f" Commands: {', '.join(names)}"
    if "unrecognized arguments" in message:
        command = next((a for a in argv if a in names), None)
        options = []
        if command in COMMANDS:
            options = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(_load(COMMANDS[command][0]))]
        hints = []
        for bad in message.split(":", 1)[1].split():
            close = difflib.get_close_matches(bad.split("=")[0], options, 1)
            hints.append(f"{bad} (did you mean {close[0]}?)" if close else bad)
        if not hints:                       # argparse prints an empty argument as nothing
            hints.append("'' (an empty argument: on/off options take no value, e.g. --progress or --no-progress)")
        return f"unknown option(s) {', '.join(hints)}; see `mmfeatures {command or ''} --help`".replace("  ", " ")
    if "--help" in message:
        return message
    command = next((a for a in argv if a in names), "")
    return f"{message} (see `mmfeatures {command} --help`)".replace("  ", " ")


TERMINAL_ROWS = 12
"""The most rows of a table printed in the terminal; the rest are in result.json."""


def _text_table(table: dict[str, Any]) -> str:
    """A record's table as aligned text: numbers to 4 significant digits, at most TERMINAL_ROWS rows."""
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    rows = [[cell(v) for v in row] for row in table["rows"][:TERMINAL_ROWS]]
    widths = [max(len(str(c)), *(len(r[i]) for r in rows)) for i, c in enumerate(table["columns"])]
    head = [str(c) for c in table["columns"]]
    lines = [f"{table['title']}:", *("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                                     for r in [head, *rows])]
    if len(table["rows"]) > TERMINAL_ROWS:
        lines.append(f"  ... {len(table['rows']) - TERMINAL_ROWS} more rows in result.json")
    return "\n".join(lines)


def _summary(command: str, result: Any) -> None:
    from mmfeatures.pipeline import Record

    if isinstance(result, Record):
        print(f"\n{result.title}")
        if result.verdict:
            print(f"\n{result.verdict}\n")
        for t in result.tables:
            if t["rows"]:
                print(_text_table(t))
        print("wrote:")
        for path in (result.written if result.folder else [a.path for a in result.artifacts]):
            print(f"  {path}")
    elif command == "demo":
        print(f"\n{'stage':24s} {'seconds':>8s}  reused")
        for s in result.stages:
            print(f"{s.name:24s} {s.seconds:8.1f}  {'yes' if s.reused else ''}")
        print("\nverdicts:")
        for claim, status in result.verdicts.items():
            print(f"  [{status}] {claim}")
        print(f"\nwrote {result.index} (with its figures and job records beside it); "
              f"{result.seconds / 60:.1f} min. Open it in a browser.")
    else:
        print(f"wrote {result}")


def _cmd_models() -> int:
    from mmfeatures.encoders import list_models

    for m in list_models():
        kind = "real" if m.real else "random-init"
        print(f"{m.name:34s} {'+'.join(m.modalities):11s} {kind:11s} {m.description}")
    return 0


def _cmd_train_embedded(args: argparse.Namespace) -> int:
    from mmfeatures.emojiclip.card import write_card
    from mmfeatures.emojiclip.evaluate import evaluate
    from mmfeatures.emojiclip.train import TrainConfig, train
    from mmfeatures.encoders.emojiclip import default_weights, load_emoji_clip

    config = TrainConfig()
    if args.steps is not None or args.seed is not None:
        config = dataclasses.replace(config, steps=args.steps or config.steps,
                                     seed=config.seed if args.seed is None else args.seed)
    out = args.out or default_weights().parent
    command = "mmfeatures train-embedded" + "".join(f" --{k} {v}" for k, v in (("steps", args.steps),
                                                                                   ("seed", args.seed)) if v is not None)
    weights = train(config, out, args.work, command=command)
    card = write_card(out, evaluate(load_emoji_clip(weights), config))
    print(f"wrote {weights} and its card {card}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from mmfeatures.datasets import (
        data_card,
        data_cards,
        fetch_libreoffice,
        fetch_tuxpaint,
        freedict,
        general,
    )
    from mmfeatures.datasets.libreoffice import DEFAULT_LANGUAGES, package
    from mmfeatures.datasets.tuxpaint import PACKAGE

    languages = tuple(c.strip() for c in (args.languages or "").split(",") if c.strip()) or DEFAULT_LANGUAGES
    wanted = {args.only} if args.only else {"libreoffice", "tuxpaint", "freedict", "general"}
    names = [package(c) for c in ("en", *languages)] if "libreoffice" in wanted else []
    names += [PACKAGE] if "tuxpaint" in wanted else []
    dictionaries = [c for c in languages if c in freedict.LANGUAGES] if args.languages else list(freedict.LANGUAGES)
    names += [freedict.package(c) for c in dictionaries] if "freedict" in wanted else []
    names += list(general.FORTUNES.values()) if "general" in wanted else []
    if args.action == "fetch":
        if "libreoffice" in wanted:
            fetch_libreoffice(languages)
        if "tuxpaint" in wanted:
            fetch_tuxpaint()
        if "freedict" in wanted:
            freedict.fetch_freedict(dictionaries)
        if "general" in wanted:
            general.fetch_general()
    cards = data_cards() if args.action == "card" and not args.languages and not args.only else \
        [data_card(name) for name in dict.fromkeys(names)]
    for card in cards:
        print(f"{card['package']} {card['version']} ({card['licence']}): {_counts(card['counts'])}")
    if args.action == "fetch" and args.only != "tuxpaint" and not args.languages:
        print("(LibreOffice's help has no ar, fa or sw in Debian: those built-in languages are not in the corpus)")
    return 0


def _counts(n: dict) -> str:
    """A data card's counts in words (Tux Paint, a FreeDict dictionary, LibreOffice's help)."""
    if "stamps" in n:
        return (f"{n['stamps']} stamps ({n['png']} PNG, {n['svg_only']} SVG only), {n['captions']} captions in "
                f"{n['languages']} languages")
    if "headwords" in n:
        return f"{n['headwords']} headwords"
    if "paragraphs" in n:
        return f"{n['paragraphs']} paragraphs" + (f", {n['translated']} translated ({n['train']} train, "
                                                  f"{n['heldout']} held out)" if "translated" in n else "")
    return f"counts {n}"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        config = make_config(args.command, args) if args.command in COMMANDS else None
    except UsageError as e:
        print(f"mmfeatures: usage error: {_usage_hint(str(e), argv)}", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.command == "models":
            return _cmd_models()
        if args.command == "train-embedded":
            return _cmd_train_embedded(args)
        if args.command == "data":
            return _cmd_data(args)
        _summary(args.command, _load(COMMANDS[args.command][1])(config))
        return 0
    except KeyboardInterrupt:
        print(f"\nmmfeatures {args.command}: interrupted. Everything finished so far is kept; run the same command "
              "again to resume.", file=sys.stderr)
        return 1
    except (MMFeaturesError, ValueError, OSError) as e:
        print(f"mmfeatures {args.command}: error: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
