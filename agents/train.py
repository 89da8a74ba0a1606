"""Command line for the RL trainer: every ``TrainConfig`` field is a flag (``--num-generations 8``).

    python -m agents.train --env PolySet-Polynomial-v0 --agent poly_epo --model smollm2-135m --num-steps 20
    python -m agents.train --preset cpu-polynomial-smollm2 --agent grpo --seed 1
    python -m agents.train --config runs/old/config.json --resume             # continue a killed run
    accelerate launch --config_file agents/accelerate_configs/ddp.yaml -m agents.train --preset ...

Precedence: preset < ``--config`` file < explicit flags. Dict fields take JSON (``--env-kwargs '{"max_coefficient":
5}'``). Prints the run directory on success; exits with status 1 and the cause on a NaN or a bad setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any

from agents.config import PRESETS, TrainConfig

ALIASES = {"env_id": ["--env"]}


def _field_help(name: str) -> str:
    """The attribute docstring of a TrainConfig field (first sentence), read from the source."""
    import inspect

    source = inspect.getsource(TrainConfig)
    marker = f"    {name}:"
    start = source.find(marker)
    if start < 0:
        return ""
    rest = source[start:].split("\n")
    for line in rest[1:4]:
        line = line.strip()
        if line.startswith('"""'):
            return line.strip('"').split(". ")[0]
    return ""


def _none_or(kind: type):
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _json_dict(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agents.train", description=__doc__.split("\n\n")[0],
                                     argument_default=argparse.SUPPRESS)
    parser.add_argument("--preset", choices=list(PRESETS), help="start from a preset")
    parser.add_argument("--config", help="start from a TrainConfig JSON file (e.g. a run's config.json)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flags = [f"--{f.name.replace('_', '-')}"] + ALIASES.get(f.name, [])
        hint = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        args: dict[str, Any] = {"dest": f.name, "help": f"{_field_help(f.name)} (default: {default!r})"}
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
        base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
        kind = typing.get_origin(base) or base
        if kind is bool:
            args["action"] = argparse.BooleanOptionalAction
        elif kind is dict:
            args["type"] = _json_dict
        elif kind is tuple:
            args.update(type=float, nargs=2)
        elif kind in (int, float, str):
            args["type"] = _none_or(kind) if optional else kind
        else:
            args["type"] = str
        parser.add_argument(*flags, **args)
    return parser


def parse_config(argv: Sequence[str] | None = None) -> TrainConfig:
    """The ``TrainConfig`` described by command-line arguments (ValueError for bad values)."""
    ns = vars(build_parser().parse_args(argv))
    fields: dict[str, Any] = {}
    preset = ns.pop("preset", None)
    if preset is not None:
        fields.update(PRESETS[preset])
    config_file = ns.pop("config", None)
    if config_file is not None:
        with open(config_file, encoding="utf-8") as fh:
            fields.update(json.load(fh))
    fields.update(ns)
    return TrainConfig.from_dict(fields)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        config = parse_config(argv)
    except (ValueError, OSError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from agents.trainer import NonFiniteError, train

    try:
        run_dir = train(config)
    except NonFiniteError as err:
        print(f"stopped: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(run_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
