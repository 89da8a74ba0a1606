"""Progress of the warm start's long stages: writing demonstrations reports every demonstration, the bar's ETA is the
average rate since the stage began in this process (a resumed stage does not count its earlier units), and the
runner sees each stage in order."""

from __future__ import annotations

import pytest

import agents.progress as progress_module
from agents.progress import StageProgress
from agents.warmstart import write_demonstrations
from polyenv.domains.polynomial import PolynomialEnv


@pytest.fixture
def reports(monkeypatch):
    seen: list[tuple[str, int, int]] = []
    monkeypatch.setattr(progress_module, "report_progress", lambda stage, done, total: seen.append((stage, done, total)))
    return seen


def test_demonstrations_report_each_one_and_do_not_change(reports):
    env = PolynomialEnv(split="train")
    calls: list[int] = []
    with_progress = env.demonstrations(7, seed=3, progress=calls.append)
    assert calls == [1, 2, 3, 4, 5, 6, 7]
    assert with_progress == env.demonstrations(7, seed=3)


def test_write_demonstrations_is_one_stage_over_both_parts(reports):
    env = PolynomialEnv(split="train")
    weights = {"x=1": 1.0, "x=-2": 1.0}
    balanced, weighted = write_demonstrations(env, [(3, weights, 1), (4, None, 0)])
    assert balanced == env.demonstrations(3, strategy_weights=weights, seed=1)
    assert weighted == env.demonstrations(4, seed=0)
    assert {stage for stage, _, _ in reports} == {"demonstrations"} and {t for _, _, t in reports} == {7}
    done = [d for _, d, _ in reports]
    assert done[0] == 0 and done[-1] == 7 and done == sorted(done) and set(done) == set(range(8))


def test_write_demonstrations_passes_slip_rates_to_both_parts(reports):
    """A warm start's slip_rates reach both phases' demonstrations; domains without slips refuse them."""
    from polyenv.domains.countdown import CountdownEnv

    env = PolynomialEnv(split="train")
    weights = {"x=1": 1.0, "x=0": 1.0}
    rates = {"x=1": 0.5}
    balanced, weighted = write_demonstrations(env, [(40, weights, 1), (40, weights, 0)], slip_rates=rates)
    assert balanced == env.demonstrations(40, strategy_weights=weights, seed=1, slip_rates=rates)
    assert weighted == env.demonstrations(40, strategy_weights=weights, seed=0, slip_rates=rates)
    assert balanced != env.demonstrations(40, strategy_weights=weights, seed=1)
    assert weighted != env.demonstrations(40, strategy_weights=weights, seed=0)
    with pytest.raises(NotImplementedError, match="slipped"):
        CountdownEnv(split="train").demonstrations(200, slip_rates={"add": 0.9})


def test_math_demonstrations_report_progress_too():
    from polyenv.domains.math import MathEnv

    calls: list[int] = []
    env = MathEnv(dataset="gsm8k", split="train")
    assert len(env.demonstrations(5, seed=0, progress=calls.append)) == 5 and calls == [1, 2, 3, 4, 5]


def test_stage_eta_is_the_average_rate_since_the_stage_began_here(reports):
    clock = [100.0]
    with StageProgress("warm start", 100, unit="step", initial=50, enabled=True) as stage:
        stage.bar._time = lambda: clock[0]
        stage.bar.start_t = stage.bar.last_print_t = 100.0
        clock[0] = 110.0
        stage.update(60)  # 10 steps in 10 s since the resume: 1 step/s, 40 left
        meter = stage.bar.format_meter(**stage.bar.format_dict)
    assert "60/100" in meter and "00:10<00:40" in meter, meter
    assert reports == [("warm start", 50, 100), ("warm start", 60, 100)]


def test_progress_file_holds_the_last_stage(tmp_path, monkeypatch):
    from agents.progress import read_progress

    path = tmp_path / "p.json"
    monkeypatch.setenv(progress_module.ENV_VAR, str(path))
    with StageProgress("demonstrations", 4, enabled=False) as stage:
        stage.update(4)  # the last update of a stage is always written
    assert read_progress(path)["stage"] == "demonstrations" and read_progress(path)["done"] == 4
