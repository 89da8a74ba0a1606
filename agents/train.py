"""Command line for the RL trainer: every ``TrainConfig`` field is a flag, documented by ``--help``.

    python -m agents.train --env PolySet-Polynomial-v0 --agent poly_epo --model smollm2-135m --max-steps 20
    python -m agents.train --preset cpu-polynomial-smollm2 --agent grpo --seed 1
    python -m agents.train --config my_run.yaml --seed 2                      # YAML or JSON field values
    python -m agents.train --config runs/old/config.json --resume             # continue a killed run
    accelerate launch --config_file agents/accelerate_configs/ddp.yaml -m agents.train --preset ...

Precedence: preset < ``--config`` file < explicit flags. Dict fields take JSON (``--env-kwargs '{"max_coefficient":
5}'``); flags cannot be abbreviated. Prints the run directory on success; exits with status 1 on a NaN and 2 with
the cause on a bad setting.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from agents.cli import parse_config
from agents.config import PRESETS, TrainConfig, agent_names


def build_parser():
    """The ``HfArgumentParser`` of ``TrainConfig`` (plus ``--preset`` and ``--config``)."""
    from agents.cli import build_parser as build

    return build(TrainConfig, prog="python -m agents.train", description=__doc__, presets=PRESETS,
                 choices={"agent": agent_names()})


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The ``TrainConfig`` described by command-line arguments (``ValueError`` for bad values)."""
    return parse_config(TrainConfig, argv, prog="python -m agents.train", description=__doc__, presets=PRESETS,
                        choices={"agent": agent_names()})


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        config = parse_args(argv)
    except (ValueError, OSError) as err:
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
