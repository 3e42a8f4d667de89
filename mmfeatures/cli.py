"""`mmfeatures <subcommand>`: a thin layer where every subcommand is fn(config).

Exit codes: 0 success, 2 usage error, 1 failure (with a message that names the fix).
"""

from __future__ import annotations

import argparse
import sys

from mmfeatures.errors import MMFeaturesError


def _cmd_models(args: argparse.Namespace) -> int:
    from mmfeatures.encoders import list_models

    for m in list_models():
        kind = "real" if m.real else "random-init"
        print(f"{m.name:34s} {'+'.join(m.modalities):11s} {kind:11s} {m.description}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mmfeatures.demo import DemoConfig, run_demo

    layers = tuple(int(x) for x in args.layers.split(",")) if args.layers else DemoConfig.layers
    r = run_demo(DemoConfig(model=args.model, layers=layers, device=args.device, store_dir=args.store_dir))
    print(f"model {r.model} on {r.device}: {r.n_texts} sentences, {r.n_tokens} content tokens, "
          f"{len(r.languages)} languages ({', '.join(r.languages)}), {r.seconds:.1f} s")
    print(f"activation stores {'reused from' if r.reused else 'written to'} {r.store_root}")
    print("Mean-pooled content-token activations; centred cosine between different-language rows:")
    print(f"{'site':22s} {'d':>4s} {'mean norm':>10s} {'same concept':>13s} {'other concept':>14s}")
    for s in r.sites:
        print(f"{s.site:22s} {s.d:4d} {s.mean_norm:10.2f} {s.same_concept_cos:13.3f} {s.other_concept_cos:14.3f}")
    return 0


def _cmd_train_embedded(args: argparse.Namespace) -> int:
    import dataclasses

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
    result = evaluate(load_emoji_clip(weights), config)
    card = write_card(out, result)
    print(f"wrote {weights} and its card {card}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmfeatures", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  mmfeatures models\n  mmfeatures demo --layers 0,6,11")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list registered models").set_defaults(fn=_cmd_models)
    d = sub.add_parser("demo", help="run the main job on the offline default",
                       epilog="example: mmfeatures demo --model offline:minilm-l6 --layers 0,3,5")
    d.add_argument("--model", default="offline:e5-small", help="registry name (see `mmfeatures models`)")
    d.add_argument("--layers", default="", help="comma-separated layer indices (default 0,3,6,9,11)")
    d.add_argument("--device", default="auto", help="auto, cpu or cuda")
    d.add_argument("--store-dir", default=None, help="folder for activation stores (default: user cache)")
    d.set_defaults(fn=_cmd_demo)
    t = sub.add_parser("train-embedded", help="train offline:e5-emoji-clip's image tower and write its card",
                       epilog="about 25 minutes on 2 CPU cores; resumable (rerun the same command)")
    t.add_argument("--out", default=None, help="output folder (default: the repository's data/models)")
    t.add_argument("--work", default=None, help="checkpoint folder (default: user cache, keyed by the config)")
    t.add_argument("--steps", type=int, default=None, help="training steps (default 1700)")
    t.add_argument("--seed", type=int, default=None, help="seed for the split, init and augmentation (default 0)")
    t.set_defaults(fn=_cmd_train_embedded)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (MMFeaturesError, ValueError, FileNotFoundError) as e:
        print(f"mmfeatures {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
