"""The command line (transformers.HfArgumentParser over TrainConfig): help from each field's documentation, choices
from Literal types, YAML/JSON config files, no abbreviations, deprecated names, and errors that say what is wrong."""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import Literal

import pytest
import yaml

from agents.cli import field_help, load_config_file, option, parse_config
from agents.config import DEPRECATED_NAMES, PRESETS, TrainConfig
from agents.train import build_parser, main, parse_args


def test_every_field_is_documented_once_and_help_prints_it_whole(capsys):
    fields = [f for f in dataclasses.fields(TrainConfig)]
    assert all(len(f.metadata.get("help", "")) > 10 for f in fields), [f.name for f in fields
                                                                        if not f.metadata.get("help")]
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    # the whole sentence, including the parts the old source-scraping help cut off
    assert " ".join(field_help(TrainConfig, "loss_type").split()) in text
    assert "(default: 'dr_grpo')" in text and "{grpo,bnpo,dr_grpo,dapo}" in text


def test_abbreviations_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--max-step", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --max-step 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--num-step", "3"])  # not the deprecated --num-steps either


def test_literal_and_registry_choices(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--loss-type", "sum"])
    assert "invalid choice: 'sum'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--agent", "ppo"])
    assert "invalid choice: 'ppo'" in capsys.readouterr().err
    assert parse_args(["--agent", "grpo", "--scale-rewards", "group"]).scale_rewards == "group"


def test_types_of_flags():
    cfg = parse_args(["--env", "PolySet-Polynomial-v0", "--max_steps", "3", "--set-size", "none", "--adam-betas",
                      "0.8", "0.9", "--env-kwargs", '{"max_coefficient": 5}', "--no-progress", "--resume",
                      "--report-to", "tensorboard", "trackio", "--max-grad-norm", "none"])
    assert (cfg.max_steps, cfg.set_size, cfg.adam_betas) == (3, None, (0.8, 0.9))
    assert cfg.env_kwargs == {"max_coefficient": 5} and (cfg.progress, cfg.resume) == (False, True)
    assert (cfg.report_to, cfg.max_grad_norm) == (["tensorboard", "trackio"], None)
    assert parse_args(["--gradient-checkpointing", "false"]).gradient_checkpointing is False
    assert parse_args([]) == TrainConfig()


def test_precedence_preset_then_config_file_then_flags(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(yaml.safe_dump({"seed": 5, "learning_rate": 2e-5, "env_kwargs": {"max_coefficient": 3}}))
    cfg = parse_args(["--preset", "cpu-polynomial-smollm2", "--config", str(yaml_file), "--seed", "7"])
    assert cfg.seed == 7  # flag over file
    assert cfg.learning_rate == 2e-5  # file over preset (preset says 1e-5)
    assert cfg.max_steps == PRESETS["cpu-polynomial-smollm2"]["max_steps"]  # preset over default
    assert cfg.env_kwargs == {"max_coefficient": 3}
    json_file = tmp_path / "config.json"
    json_file.write_text(TrainConfig(agent="grpo", seed=2).to_json())  # a run's config.json
    assert parse_args(["--config", str(json_file)]) == TrainConfig(agent="grpo", seed=2)


def test_config_file_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_config_file(tmp_path / "nope.yaml")
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config_file(listed)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"num_stepz": 3}))
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\) \['num_stepz'\]"):
        parse_args(["--config", str(bad)])


@dataclasses.dataclass
class Other:
    steps: int = option(10, "Steps.")
    mode: Literal["fast", "exact"] = option("exact", "How.")
    name: str | None = option(None, "A name.")


def test_shared_helper_works_for_another_dataclass():
    assert parse_config(Other, ["--steps", "4", "--mode", "fast"]) == Other(4, "fast", None)
    assert parse_config(Other, []) == Other()


@pytest.mark.parametrize(("old", "value", "new", "expected"), [
    ("num_steps", 7, "max_steps", 7),
    ("eval_steps", 3, "callback_steps", 3),
    ("log_tensorboard", True, "report_to", ["tensorboard"]),
])
def test_deprecated_names_warn_and_map(old, value, new, expected):
    assert DEPRECATED_NAMES[old] == new
    with pytest.warns(FutureWarning, match=f"TrainConfig.{old} is deprecated .* use {new}"):
        cfg = TrainConfig(**{old: value})
    assert getattr(cfg, new) == expected and getattr(cfg, old) is None
    assert old not in cfg.to_dict() and TrainConfig.from_dict(cfg.to_dict()) == cfg
    flag = f"--{old.replace('_', '-')}"
    with pytest.warns(FutureWarning):
        parsed = parse_args([flag] if value is True else [flag, str(value)])
    assert getattr(parsed, new) == expected


def test_deprecated_name_conflicting_with_the_new_one():
    with pytest.raises(ValueError, match="num_steps=7 \\(deprecated\\) conflicts with max_steps=5"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        TrainConfig(num_steps=7, max_steps=5)
    old_saved = {**TrainConfig().to_dict(), "num_steps": 9, "log_tensorboard": False, "eval_steps": 0}
    del old_saved["max_steps"], old_saved["report_to"], old_saved["callback_steps"]
    with pytest.warns(FutureWarning):
        cfg = TrainConfig.from_dict(old_saved)  # a config.json written before the rename
    assert (cfg.max_steps, cfg.report_to, cfg.callback_steps) == (9, [], 0)


def test_missing_model_path_says_it_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "no" / "such-model"
    assert main(["--model", str(missing), "--max-steps", "1", "--output-dir", str(tmp_path / "runs"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"model path '{missing}' does not exist" in err and "tokenizer" not in err
    assert not (tmp_path / "runs").exists()


def test_tiny_preset_without_its_base_says_how_to_build_it(tmp_path, monkeypatch, capsys):
    import agents.config as config_module

    missing = str(tmp_path / "bases" / "polynomial__tiny128x2__s0")
    monkeypatch.setitem(config_module._CPU_TINY, "model", missing)
    assert main(["--preset", "cpu-polynomial-tiny", "--max-steps", "1", "--output-dir", str(tmp_path / "runs"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "python -m agents.warmstart --env PolySet-Polynomial-v0" in err


def test_validation_helper_refuses_bools_and_names_the_value():
    from polyenv.validation import check_choice, check_int, check_number

    with pytest.raises(ValueError, match="max_steps must be an integer >= 1, got True"):
        TrainConfig(max_steps=True)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0 and <= 2.0, got nan"):
        TrainConfig(temperature=float("nan"))
    import numpy as np

    check_int("k", np.int64(3), low=1)
    check_number("x", 0.5, low=0, high=1, high_open=True)
    with pytest.raises(ValueError, match=r"x must be a finite number >= 0 and < 1, got 1"):
        check_number("x", 1, low=0, high=1, high_open=True)
    with pytest.raises(ValueError, match=r"k must be an integer >= 1 or None, got 0"):
        check_int("k", 0, low=1, optional=True)
    with pytest.raises(ValueError, match=r"unknown mode 'z'; choose one of \['a', 'b'\]"):
        check_choice("mode", "z", ("a", "b"))


def test_warm_start_cli_uses_the_shared_helper(capsys):
    from agents.warmstart import WarmstartConfig
    from agents.warmstart import parse_args as warmstart_args

    cfg = warmstart_args(["--env", "PolySet-Polynomial-v0", "--lr", "0.01", "--strategy-weights", '{"x=0": 1.0}',
                          "--max-new-tokens", "none", "--num-demos", "10"])
    assert cfg == WarmstartConfig(env_id="PolySet-Polynomial-v0", learning_rate=0.01, strategy_weights={"x=0": 1.0},
                                  max_new_tokens=None, num_demos=10)
    # help comes from the Attributes section of the class docstring, whole ("5% warm-up" survives %-formatting)
    assert "5% warm-up" in field_help(WarmstartConfig, "learning_rate")
    assert field_help(WarmstartConfig, "n_layers") == field_help(WarmstartConfig, "d_model") != ""
    with pytest.raises(SystemExit):
        warmstart_args(["--help"])
    assert "decay, 5% warm-up" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        warmstart_args(["--num-demo", "3"])
    with pytest.raises(SystemExit, match="error: .*batch_size"):
        warmstart_args(["--batch-size", "0"])
