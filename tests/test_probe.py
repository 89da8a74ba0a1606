"""Fig. 5 probe: a fixed held-out probe set evaluated during training; curves and headline from its logs."""

import json

import pytest

from benchmarks.probe import ProbeCallback, collect, curves, headline, read_log


def _entry(step, problems, accuracy=0.5):
    return {"step": step, "accuracy": accuracy, "num_samples": 64, "correct_strategies": problems}


def test_curves_count_distinct_and_cumulative_correct_strategies():
    entries = [_entry(0, {"a": ["x=0"], "b": ["x=0", "x=1"]}),
               _entry(10, {"a": ["x=2"], "b": ["x=1"]}),
               _entry(20, {"a": ["x=0", "x=2", "x=3"], "b": []})]
    got = curves(entries)
    assert [c["distinct_correct"] for c in got] == [1.5, 1.0, 1.5]
    # discovered so far: a {0} -> {0, 2} -> {0, 2, 3}; b {0, 1} -> {0, 1} -> {0, 1}
    assert [c["cumulative_distinct_correct"] for c in got] == [1.5, 2.0, 2.5]


def test_log_collect_and_headline(tmp_path):
    for agent, values in (("grpo", [["x=0"]]), ("poly_epo", [["x=0", "x=1", "x=-2"]])):
        for seed in (0, 1):
            log = tmp_path / "Polynomial" / f"{agent}__s{seed}" / "probe.jsonl"
            log.parent.mkdir(parents=True)
            lines = [_entry(0, {"p": ["x=0"]}), _entry(10, {"p": values[0]}), _entry(10, {"p": values[0]})]
            log.write_text("\n".join(json.dumps(e) for e in lines) + "\n{truncated")
    assert [e["step"] for e in read_log(log)] == [0, 10]  # duplicates and a cut line are dropped
    rows = collect(tmp_path)
    h = headline(rows, "Polynomial")
    assert h["grpo"]["mean"] == 1.0 and h["poly_epo"]["mean"] == 3.0 and h["poly_epo_over_grpo"] == 3.0
    assert h["poly_epo"]["step"] == 10 and h["poly_epo"]["seeds"] == {0: 3.0, 1: 3.0}


def test_probe_callback_evaluates_the_policy_and_logs_each_step_once(tmp_path):
    from agents.char_tokenizer import build_char_tokenizer
    from agents.policy import Policy
    from agents.tiny_model import TinyModelConfig, build_tiny_model

    tok = build_char_tokenizer(["x = 0: y = 1. Answer: (0, 1)"], model_max_length=256)
    model = build_tiny_model(TinyModelConfig(d_model=32, n_layers=1, n_heads=2, max_positions=256), tok, seed=0)
    base = tmp_path / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    out = tmp_path / "run" / "probe.jsonl"
    cb = ProbeCallback("PolySet-Polynomial-v0", {"max_coefficient": 3, "num_test_problems": 10}, out,
                       num_problems=2, num_samples=3, max_new_tokens=8, base_model=str(base),
                       base_cache=base / "probe_base.json")
    assert (base / "probe_base.json").is_file() and [e["step"] for e in read_log(out)] == [0]
    row = {}
    cb(5, row, Policy(model, tok))
    cb(5, row, Policy(model, tok))  # a resumed run does not log a step twice
    entries = read_log(out)
    assert [e["step"] for e in entries] == [0, 5] and len(out.read_text().splitlines()) == 2
    assert set(entries[1]["correct_strategies"]) == {"polynomial/test/0", "polynomial/test/1"}
    assert entries[1]["num_samples"] == 3 and row["probe_distinct_correct_per_prompt"] == 0.0
    # a second run of the same base reuses the cached step-0 entry
    cb2 = ProbeCallback("PolySet-Polynomial-v0", {"max_coefficient": 3, "num_test_problems": 10},
                        tmp_path / "run2" / "probe.jsonl", num_problems=2, num_samples=3, max_new_tokens=8,
                        base_model=str(base), base_cache=base / "probe_base.json")
    assert read_log(cb2.out)[0] == entries[0]
    with pytest.raises(ValueError, match="num_samples"):
        ProbeCallback("PolySet-Polynomial-v0", {}, tmp_path / "x.jsonl", num_samples=0)


def test_suite_probe_reaches_the_train_jobs(tmp_path):
    import dataclasses
    from pathlib import Path

    from benchmarks.run import Layout, plan
    from benchmarks.suites import get_suite

    suite = get_suite("synthetic-cpu")
    env = dataclasses.replace(suite.envs[0], probe={"num_problems": 2, "num_samples": 4})
    suite = dataclasses.replace(suite, envs=(env,), seeds=(0,))
    jobs = plan(suite, Layout(suite=suite.name, runs_root=tmp_path, results_root=tmp_path / "r"))
    probes = [j.payload["probe"] for j in jobs if j.kind == "train"]
    assert len(probes) == 3 and all(p["num_problems"] == 2 and p["env_id"] == env.env_id for p in probes)
    assert all(Path(p["out"]).name == "probe.jsonl" and p["base_cache"].endswith("probe_base.json") for p in probes)


def test_runner_envs_flag_keeps_only_the_named_envs(tmp_path, capsys):
    from benchmarks.run import main

    assert main(["--suite", "synthetic-cpu", "--envs", "Polynomial", "--dry-run", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Polynomial/grpo/s2" in out and "1 env(s) x 3 agent(s)" in out
    assert "Multiplication/" not in out and "Countdown/" not in out
    with pytest.raises(SystemExit):
        main(["--suite", "synthetic-cpu", "--envs", "Nope", "--dry-run", "--runs", str(tmp_path)])


def test_write_keeps_the_rows_of_envs_without_probe_logs(tmp_path):
    """Rebuilding the probe CSV where only Multiplication has runs keeps the Polynomial rows of the existing CSV and
    replaces the Multiplication ones."""
    import csv

    from benchmarks.probe import write

    runs, out = tmp_path / "runs", tmp_path / "out"
    log = runs / "Multiplication" / "grpo__s0" / "probe.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps(_entry(0, {"p": ["a", "b"]})) + "\n")
    out.mkdir()
    (out / "probe_metrics.csv").write_text("env,agent,seed,step,metric,value\nPolynomial,grpo,1,40,distinct_correct,2.5\n"
                                           "Multiplication,grpo,0,0,distinct_correct,9.0\n")
    write(runs, out)
    with open(out / "probe_metrics.csv", newline="") as fh:
        rows = [(r["env"], r["metric"], float(r["value"])) for r in csv.DictReader(fh)]
    assert ("Polynomial", "distinct_correct", 2.5) in rows
    assert ("Multiplication", "distinct_correct", 2.0) in rows and ("Multiplication", "distinct_correct", 9.0) not in rows
    assert (out / "probe_strategies.png").is_file()
