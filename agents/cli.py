"""Command lines from config dataclasses, with ``transformers.HfArgumentParser`` (what TRL's scripts use).

    from agents.cli import option, parse_config
    @dataclass
    class MyConfig:
        steps: int = option(10, "Training steps.")
        mode: Literal["fast", "exact"] = option("exact", "How to compute it.")
    config = parse_config(MyConfig, sys.argv[1:], prog="python -m my.module")

Every field is a flag under its own name (``--num_generations`` or ``--num-generations``) whose help is the field's
``help`` metadata, written once where the field is defined (or, for dataclasses documented Google style, its entry
in the class docstring's ``Attributes:`` section); ``Literal`` fields list their choices; ``bool`` fields
take ``--flag``, ``--flag false`` or ``--no-flag``; ``dict`` fields take JSON; ``X | None`` fields take ``none``.
``--config FILE`` reads a YAML or JSON file of field values (as TRL's ``--config``), and ``--preset NAME`` starts
from a named preset when the caller has presets. Precedence: preset < config file < flags. Abbreviated flags are
refused (``--num-step`` is not ``--num-steps``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_MISSING: Any = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, default_factory: Any = _MISSING,
           aliases: Sequence[str] = (), **metadata: Any) -> Any:
    """A dataclass field documented once: ``help`` is the field's documentation, shown by ``--help``."""
    meta = {"help": help, **metadata}
    if aliases:
        meta["aliases"] = list(aliases)
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def field_help(cls: type, name: str) -> str:
    """The documentation of a dataclass field: its ``help`` metadata, else its entry in the class docstring's
    ``Attributes:`` section (Google style; ``a, b: text`` documents both)."""
    meta = next((f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name), "")
    return meta or _docstring_attributes(cls).get(name, "")


def _docstring_attributes(cls: type) -> dict[str, str]:
    import inspect
    import re

    doc = inspect.getdoc(cls) or ""
    if "Attributes:" not in doc:
        return {}
    out: dict[str, str] = {}
    names: list[str] = []
    for line in doc.split("Attributes:", 1)[1].splitlines():
        entry = re.match(r"^    (\w+(?:, \w+)*): (.*)$", line)
        if entry:
            names = entry.group(1).split(", ")
            for n in names:
                out[n] = entry.group(2).strip()
        elif line.startswith("        ") and names:
            for n in names:
                out[n] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break  # the next section
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Field values from a YAML (``.yaml`` / ``.yml``) or JSON file; a clear error when it is not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of field names to values, "
                         f"got {type(data).__name__}")
    return data


def _json_dict(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({err})") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _none_or(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_optional(text: str) -> Any:
        return None if text.lower() in ("none", "null") else parse(text)

    parse_optional.__name__ = getattr(parse, "__name__", "value")
    return parse_optional


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def build_parser(config_cls: type, *, prog: str | None = None, description: str | None = None,
                 presets: Mapping[str, Mapping[str, Any]] | None = None,
                 choices: Mapping[str, Sequence[Any]] | None = None,
                 aliases: Mapping[str, Sequence[str]] | None = None) -> argparse.ArgumentParser:
    """An ``HfArgumentParser`` for ``config_cls`` (see the module docstring). ``choices`` adds choices to fields
    whose values come from a registry rather than a ``Literal``; ``aliases`` adds flags (``{"learning_rate":
    ["--lr"]}``). Help comes from :func:`field_help`. Unset flags are absent from the namespace."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(config_cls, prog=prog, description=description, allow_abbrev=False,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(config_cls)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    for action in parser._actions:
        field = fields.get(action.dest)
        if field is None:
            continue
        base, optional = _unwrap_optional(hints[field.name])
        kind = typing.get_origin(base) or base
        if kind is dict:
            action.type = _json_dict
        elif kind is tuple:
            action.type, action.nargs = typing.get_args(base)[0], len(typing.get_args(base))
        if kind is bool and action.nargs is None and action.const is None:  # `X | None` bools: --flag alone = true
            action.nargs, action.const = "?", True
        if optional and action.type in (int, float, str):
            action.type = _none_or(action.type)
        if choices and field.name in choices:
            action.choices = list(choices[field.name])
        if not action.help:
            action.help = field_help(config_cls, field.name)
        for flag in (aliases or {}).get(field.name, ()):
            if not action.option_strings[0].startswith("--no_"):
                action.option_strings.append(flag)
                parser._option_string_actions[flag] = action
        default = field.default if field.default is not _MISSING else (
            field.default_factory() if field.default_factory is not _MISSING else None)
        if action.option_strings[0].startswith("--no_"):
            action.help = f"set {field.name} to False"
        else:  # argparse %-formats help strings
            action.help = f"{action.help or ''} (default: {default!r})".strip().replace("%", "%%")
        action.default = argparse.SUPPRESS  # so that only explicit flags override presets and config files
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file of field values (flags override it)")
    if presets:
        parser.add_argument("--preset", choices=list(presets), help="start from a preset (the config file and flags "
                            "override it)")
    return parser


def parse_config(config_cls: type, argv: Sequence[str] | None = None, *, prog: str | None = None,
                 description: str | None = None, presets: Mapping[str, Mapping[str, Any]] | None = None,
                 choices: Mapping[str, Sequence[Any]] | None = None,
                 aliases: Mapping[str, Sequence[str]] | None = None) -> Any:
    """Parse ``argv`` into ``config_cls``: preset, then ``--config`` file, then flags. Bad flags exit with argparse's
    usage error (status 2); bad values raise the config's ``ValueError``."""
    parser = build_parser(config_cls, prog=prog, description=description, presets=presets, choices=choices,
                          aliases=aliases)
    values = vars(parser.parse_args(argv))
    fields: dict[str, Any] = {}
    preset = values.pop("preset", None)
    if preset is not None:
        fields.update(presets[preset])  # type: ignore[index]
    config_file = values.pop("config", None)
    if config_file is not None:
        fields.update(load_config_file(config_file))
    fields.update(values)
    from_dict = getattr(config_cls, "from_dict", None)
    return from_dict(fields) if callable(from_dict) else config_cls(**fields)
