"""Benchmarks: evaluation metrics against direct enumeration, the summaries and plots built from them, the suites,
and the runner's skip / resume logic on a real tiny model."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.evaluation import make_record, mean_branching_profile, rare_correct_strategies, summarise
from benchmarks.plots import make_all
from benchmarks.run import Layout, headline, plan
from benchmarks.suites import SUITES, EnvSpec, EvalTarget, Suite, get_suite
from polyenv.metrics import branching_profile, ks_up_to, maj_at_k, pass_at_k

REPO_ROOT = Path(__file__).resolve().parents[1]


# ---- pass@k ---------------------------------------------------------------------------------------------------------
def _pass_at_k_enumerated(n: int, c: int, k: int) -> float:
    """Share of the k-subsets of n samples (the first c correct) that contain a correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 10))
def test_pass_at_k_equals_enumeration_over_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(_pass_at_k_enumerated(n, c, k), abs=1e-12)


def test_summarise_reports_pass_at_k_for_powers_of_two_up_to_n():
    rng = np.random.default_rng(0)
    records = []
    for p in range(5):
        correct = rng.random(12) < 0.2 * p
        records.append(make_record(problem_id=f"p{p}", correct=correct, strategies=list(range(12)),
                                   answers=[str(i) for i in range(12)], rewards=correct.astype(float),
                                   token_ids=[[1, 2]] * 12))
    rows = {(r["metric"], r["k"]): r["value"] for r in summarise(records)}
    assert ks_up_to(12) == [1, 2, 4, 8, 12]
    for k in ks_up_to(12):
        expected = np.mean([_pass_at_k_enumerated(12, sum(r["correct"]), k) for r in records])
        assert rows[("pass_at_k", k)] == pytest.approx(expected, abs=1e-12)
    assert ("pass_at_k", 3) not in rows
    assert rows[("accuracy", 0)] == pytest.approx(np.mean([np.mean(r["correct"]) for r in records]))


# ---- maj@k ----------------------------------------------------------------------------------------------------------
def _maj_at_k_enumerated(answers, correct, k):
    """Exact expected majority-vote accuracy over all k-subsets with uniform tie-breaking."""
    truth = {a: c for a, c in zip(answers, correct) if a is not None}
    total = 0.0
    subsets = list(itertools.combinations(range(len(answers)), k))
    for s in subsets:
        votes = Counter(answers[i] for i in s if answers[i] is not None)
        if votes:
            top = max(votes.values())
            winners = [a for a, v in votes.items() if v == top]
            total += sum(truth[a] for a in winners) / len(winners)
    return total / len(subsets)


def test_maj_at_k_hand_worked_case():
    # Answers a, a, b, c with a correct. k = 4: a wins outright -> 1. k = 2: of the 6 pairs, {a, a} -> 1;
    # the four pairs {a, b}, {a, c} are ties won half the time -> 0.5 each; {b, c} -> 0. Mean = 3 / 6 = 0.5.
    answers, correct = ["a", "a", "b", "c"], [True, True, False, False]
    assert maj_at_k(answers, correct, 4) == 1.0
    assert _maj_at_k_enumerated(answers, correct, 2) == pytest.approx(0.5)
    assert maj_at_k(answers, correct, 2, num_draws=4000, seed=1) == pytest.approx(0.5, abs=0.03)
    # A wrong answer in the majority loses; a sample without an answer never votes.
    assert maj_at_k(["x", "x", "y", None], [False, False, True, False], 4) == 0.0
    assert maj_at_k([None, None, "y"], [False, False, True], 3) == 1.0


def test_maj_at_k_matches_enumeration_on_random_cases():
    rng = np.random.default_rng(3)
    for _ in range(4):
        n = int(rng.integers(3, 7))
        answers = [None if rng.random() < 0.15 else str(rng.integers(0, 3)) for _ in range(n)]
        good = {"0"} if rng.random() < 0.7 else {"0", "1"}
        correct = [a in good for a in answers]
        for k in range(1, n + 1):
            exact = _maj_at_k_enumerated(answers, correct, k)
            # Monte-Carlo over 1500 draws: standard error <= 0.5 / sqrt(1500) = 0.013, so 0.05 is ~4 sigma.
            assert maj_at_k(answers, correct, k, num_draws=1500, seed=k) == pytest.approx(exact, abs=0.05)


def test_summarise_majority_share_and_distinct_strategies():
    # Problem 1: 3 correct samples with 2 strategies, 1 incorrect, 1 degenerate; problem 2: all wrong, 1 strategy.
    rec1 = make_record(problem_id="a", correct=[True, True, True, False, False], strategies=[0, 0, 1, 2, -1],
                       answers=["p", "p", "q", "r", None], rewards=[1, 1, 1, 0, 0], token_ids=[[1]] * 5,
                       rare=[False, False, True, True, None])
    rec2 = make_record(problem_id="b", correct=[False] * 5, strategies=[0] * 5, answers=["z"] * 5,
                       rewards=[0] * 5, token_ids=[[1]] * 5, rare=[False] * 5)
    rows = {(r["metric"], r["k"]): r["value"] for r in summarise([rec1, rec2])}
    assert rows[("distinct_correct_per_prompt", 5)] == pytest.approx((2 + 0) / 2)
    assert rows[("distinct_incorrect_per_prompt", 5)] == pytest.approx((1 + 1) / 2)
    assert rows[("majority_share", 5)] == pytest.approx((2 / 5 + 5 / 5) / 2)
    assert rows[("maj_at_k", 5)] == pytest.approx((1.0 + 0.0) / 2)
    assert rows[("frac_prompts_solved", 0)] == 0.5
    assert rows[("degenerate_frac", 0)] == pytest.approx((1 / 5 + 0) / 2)
    # Rare: only the correct strategy 1 of problem 1 (strategy 2 is rare but incorrect).
    assert rare_correct_strategies(rec1) == 1 and rare_correct_strategies(rec2) == 0
    assert rows[("rare_correct_per_prompt", 5)] == pytest.approx(0.5)
    assert rows[("rare_correct_total", 5)] == 1.0
    assert rows[("rare_correct_sample_frac", 0)] == pytest.approx(1 / 3)


def test_make_record_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="strategies has 2 entries"):
        make_record(problem_id="x", correct=[True], strategies=[0, 1], answers=["a"], rewards=[1.0],
                    token_ids=[[1]])


# ---- branching ------------------------------------------------------------------------------------------------------
def test_branching_profile_on_hand_made_token_lists():
    seqs = [[1, 2, 3], [1, 2, 4], [1, 5], [1, 2, 3]]
    # position 1: {1}; 2: {1 2}, {1 5}; 3: {1 2 3}, {1 2 4}, {1 5} (the duplicate rollout is one branch)
    assert branching_profile(seqs).tolist() == [1, 2, 3]
    assert branching_profile([[7, 7], [7, 7]]).tolist() == [1, 1]
    assert branching_profile([[1], [2], [3]]).tolist() == [3]


def test_mean_branching_profile_extends_finished_prompts():
    recs = [{"token_ids": [[1, 2, 3], [1, 2, 4], [1, 5]]}, {"token_ids": [[9, 9], [9, 8]]}]
    # [1, 2, 3] and [1, 2] extended to [1, 2, 2] -> mean [1, 2, 2.5]
    assert mean_branching_profile(recs).tolist() == [1.0, 2.0, 2.5]


# ---- suites ---------------------------------------------------------------------------------------------------------
def test_suites_validate_and_reject_bad_settings():
    assert {"demo", "synthetic-cpu", "synthetic-smol", "math-gpu"} <= set(SUITES)
    cpu = get_suite("synthetic-cpu")
    assert len(cpu.seeds) >= 3 and set(cpu.agents) == {"grpo", "grpo_div", "poly_epo"}
    assert {e.env_id for e in cpu.envs} >= {"PolySet-Polynomial-v0", "PolySet-Multiplication-v0"}
    kw = cpu.train_kwargs(cpu.envs[0], "grpo_div", 2)
    assert kw["agent"] == "grpo_div" and kw["seed"] == 2 and "diversity_lambda" in kw
    assert "diversity_lambda" not in cpu.train_kwargs(cpu.envs[0], "poly_epo", 2)
    with pytest.raises(ValueError, match="unknown suite"):
        get_suite("nope")
    with pytest.raises(ValueError, match="must not set"):
        Suite("x", "x", (EnvSpec("PolySet-Polynomial-v0"),), train={"seed": 3})
    with pytest.raises(ValueError, match="num_samples"):
        EvalTarget("PolySet-Polynomial-v0", num_samples=0)


def test_math_gpu_suite_dry_runs_without_a_gpu(tmp_path, capsys):
    from benchmarks.run import main

    assert main(["--suite", "math-gpu", "--dry-run", "--runs", str(tmp_path / "runs"),
                 "--out", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "Qwen/Qwen3-4B-Base" in out and '"num_generations": 8' in out and '"set_size": 4' in out
    assert "POLARIS/poly_epo/s0" in out
    assert not (tmp_path / "runs").exists()


# ---- headline numbers and plots from CSVs ---------------------------------------------------------------------------
def _toy_frames():
    train_rows, eval_rows, branch_rows = [], [], []
    for agent, level in (("grpo", 1.0), ("grpo_div", 1.5), ("poly_epo", 3.0)):
        for seed in (0, 1, 2):
            for step in range(12):
                value = level * (1 + 0.1 * seed) if step >= 6 else 1.0
                train_rows.append(("Polynomial", agent, seed, step, "distinct_correct_per_prompt", value))
                train_rows.append(("Polynomial", agent, seed, step, "distinct_incorrect_per_prompt", 0.5))
                train_rows.append(("Polynomial", agent, seed, step, "frac_prompts_solved", 0.9))
                train_rows.append(("Polynomial", agent, seed, step, "mean_reward", 0.7))
    for agent in ("base", "grpo", "grpo_div", "poly_epo"):
        for seed in ((0,) if agent == "base" else (0, 1, 2)):
            ckpt = "base" if agent == "base" else "final"
            for k in (1, 2, 4, 8):
                eval_rows.append(("Polynomial", agent, seed, ckpt, "pass_at_k", k, min(1.0, 0.3 * k ** 0.5)))
                eval_rows.append(("Polynomial", agent, seed, ckpt, "maj_at_k", k, 0.5))
            for metric in ("distinct_correct_per_prompt", "distinct_incorrect_per_prompt", "rare_correct_per_prompt",
                           "rare_correct_total"):
                eval_rows.append(("Polynomial", agent, seed, ckpt, metric, 8, 2.0 + seed))
            eval_rows.append(("Polynomial", agent, seed, ckpt, "majority_share", 8, 0.4))
            for pos in range(1, 6):
                branch_rows.append(("Polynomial", agent, seed, ckpt, pos, min(pos, 4)))
    return (pd.DataFrame(train_rows, columns=["env", "agent", "seed", "step", "metric", "value"]),
            pd.DataFrame(eval_rows, columns=["env", "agent", "seed", "checkpoint", "metric", "k", "value"]),
            pd.DataFrame(branch_rows, columns=["env", "agent", "seed", "checkpoint", "position",
                                               "distinct_prefixes"]))


def test_headline_ratio_per_seed_and_pass_at_largest_k():
    suite = Suite("toy", "toy", (EnvSpec("PolySet-Polynomial-v0"),), seeds=(0, 1, 2))
    training, evaluation, _ = _toy_frames()
    numbers = headline(suite, training, evaluation)["Polynomial"]
    # Poly-EPO at 3 (1 + 0.1 s), GRPO at 1 (1 + 0.1 s) at the last step: ratio 3 for every seed.
    assert numbers["ratio_last"]["per_seed"] == {0: pytest.approx(3.0), 1: pytest.approx(3.0), 2: pytest.approx(3.0)}
    assert numbers["ratio_last"]["mean"] == pytest.approx(3.0) and numbers["ratio_last"]["std"] == pytest.approx(0)
    table = numbers["eval"]["Polynomial"]
    assert table["pass@8"]["base"] == [pytest.approx(min(1.0, 0.3 * 8 ** 0.5))]
    assert table["rare correct strategies / prompt"]["poly_epo"] == [2.0, 3.0, 4.0]


def test_plots_from_csvs_alone_draw_the_csv_values(tmp_path, monkeypatch):
    """Every figure is drawn from the CSVs alone, and the plotted data (read back from the figures' artists) are the
    seed means of the CSV values."""
    from benchmarks import plots

    figures = {}
    finish = plots._finish
    monkeypatch.setattr(plots, "_finish", lambda fig, axes, title, path: (figures.setdefault(path.name, fig),
                                                                          finish(fig, axes, title, path))[1])
    training, evaluation, branching = _toy_frames()
    training.to_csv(tmp_path / "training_metrics.csv", index=False)
    evaluation.to_csv(tmp_path / "eval_metrics.csv", index=False)
    branching.to_csv(tmp_path / "branching.csv", index=False)
    written = make_all(tmp_path)
    assert {p.name for p in written} == {"training_curves.png", "synthetic_strategies.png", "pass_at_k.png",
                                         "maj_at_k.png", "branching.png", "eval_strategies.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)

    def line(name, label, panel=0):
        (found,) = [ln for ln in figures[name].axes[panel].get_lines() if ln.get_label() == label]
        return found.get_xdata().tolist(), found.get_ydata().tolist()

    # training: 12 steps, window 1; distinct correct at steps >= 6 is level * (1 + 0.1 seed) for seeds 0, 1, 2
    xs, ys = line("training_curves.png", "Poly-EPO")
    assert xs == list(range(12)) and ys[:6] == [1.0] * 6 and ys[6:] == pytest.approx([3.3] * 6)
    assert line("training_curves.png", "GRPO")[1][-1] == pytest.approx(1.1)
    assert line("training_curves.png", "GRPO+DIV", panel=2)[1] == pytest.approx([0.7] * 12)  # mean reward
    # held-out pass@k vs k, base included
    xs, ys = line("pass_at_k.png", "base")
    assert xs == [1, 2, 4, 8] and ys == pytest.approx([min(1.0, 0.3 * k ** 0.5) for k in (1, 2, 4, 8)])
    assert line("maj_at_k.png", "Poly-EPO")[1] == pytest.approx([0.5] * 4)
    assert line("branching.png", "GRPO") == ([1, 2, 3, 4, 5], [1.0, 2.0, 3.0, 4.0, 4.0])
    # bars: distinct correct / incorrect / rare correct, mean over seeds of 2 + seed = 3 (base: seed 0 only = 2)
    from matplotlib.container import BarContainer

    heights = {c.get_label(): [b.get_height() for b in c.patches]
               for c in figures["eval_strategies.png"].axes[0].containers if isinstance(c, BarContainer)}
    assert heights["Poly-EPO"] == pytest.approx([3.0, 3.0, 3.0]) and heights["base"] == [2.0] * 3


# ---- the runner on a real tiny model --------------------------------------------------------------------------------
def _tiny_suite(num_steps: int) -> Suite:
    """A char-level Llama of ~20 k parameters warm-started for 5 steps; 2 RL steps cost well under a second."""
    return Suite(
        "tiny", "tiny test suite",
        envs=(EnvSpec("PolySet-Polynomial-v0", warmstart={
            "model": "tiny", "d_model": 32, "n_layers": 1, "n_heads": 2, "num_demos": 64, "max_steps": 5,
            "batch_size": 16, "eval_problems": 0}),),
        agents=("grpo", "poly_epo"), seeds=(0,),
        train={"max_steps": num_steps, "prompts_per_step": 2, "num_generations": 4, "set_size": 2,
               "learning_rate": 1e-3, "max_prompt_length": 128, "max_completion_length": 16, "save_steps": 1,
               "progress": False},
        eval_defaults={"num_problems": 2, "num_samples": 8, "max_new_tokens": 16},
        workers=1,  # in-process: the same scheduler without paying for worker start-up in a test
    )


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_finished_run_with_other_settings_is_refused_not_reused(tmp_path):
    """A finished run counts as done only if it was trained with the settings the suite asks for (a moved runs
    folder still matches); otherwise planning fails before any compute, naming the run and the setting."""
    from agents.config import TrainConfig

    suite, layout = _tiny_suite(num_steps=3), Layout("tiny", tmp_path / "runs")
    job = next(j for j in plan(suite, layout) if j.key == "Polynomial/grpo/s0")
    run_dir, config = Path(job.payload["run_dir"]), dict(job.payload["config"])
    run_dir.mkdir(parents=True)
    (run_dir / "DONE").write_text(json.dumps({"step": 3}))

    def saved(**changes):
        (run_dir / "config.json").write_text(TrainConfig.from_dict({**config, **changes}).to_json())
        return {j.key: j.state for j in plan(suite, layout)}["Polynomial/grpo/s0"]

    assert saved() == "done"
    assert saved(model=str(Path("/elsewhere/bases") / Path(config["model"]).name), num_threads=2) == "done"
    with pytest.raises(ValueError, match=r"grpo__s0 finished with other settings.*learning_rate"):
        saved(learning_rate=0.5)
    with pytest.raises(ValueError, match=r"model: saved .*other_base"):
        saved(model=str(Path(config["model"]).parent / "other_base"))


def test_runner_skips_finished_work_and_resumes_interrupted_runs(tmp_path, monkeypatch):
    import agents.trainer as trainer_module
    from benchmarks.run import run_suite

    real_train = trainer_module.train
    calls: list[tuple[str, bool]] = []
    crashed: list[str] = []

    def train_that_crashes_once(config, callbacks=()):
        calls.append((config.agent, config.resume))
        if config.agent == "poly_epo" and not crashed:
            crashed.append(config.agent)

            def crash(step, row, policy):
                if step == 2:  # after step 1's checkpoint: a kill in the middle of the run
                    raise RuntimeError("simulated crash at step 2")
            return real_train(config, [crash])
        return real_train(config, callbacks)

    monkeypatch.setattr(trainer_module, "train", train_that_crashes_once)
    runs, results = tmp_path / "runs", tmp_path / "results"
    suite = _tiny_suite(num_steps=3)
    layout = Layout("tiny", runs, results)
    env = suite.envs[0]
    grpo, poly = layout.run_dir(env, "grpo", 0), layout.run_dir(env, "poly_epo", 0)

    # 1. The crash fails one run and skips only its evaluation; everything else completes.
    assert run_suite(suite, runs, results, show_progress=False) == 1
    assert (grpo / "DONE").is_file() and not (poly / "DONE").exists()
    assert _steps(poly) == [1]
    states = {j.key: j.state for j in plan(suite, layout)}
    assert states.pop("Polynomial/poly_epo/s0") == "resume"
    assert states.pop("Polynomial/eval/Polynomial/poly_epo/s0") == "todo"
    assert set(states.values()) == {"done"}, states
    grpo_weights = (grpo / "final" / "model.safetensors").stat().st_mtime_ns

    # 2. Re-running resumes the interrupted run from its checkpoint and touches nothing finished.
    calls.clear()
    assert run_suite(suite, runs, results, show_progress=False) == 0
    assert calls == [("poly_epo", True)]
    assert _steps(poly) == [1, 2, 3] and (poly / "DONE").is_file()
    assert (grpo / "final" / "model.safetensors").stat().st_mtime_ns == grpo_weights

    # 3. A third run has nothing to do.
    calls.clear()
    timings = (runs / "tiny" / "timings.jsonl").read_text()
    assert run_suite(suite, runs, results, show_progress=False) == 0
    assert calls == [] and (runs / "tiny" / "timings.jsonl").read_text() == timings

    # 4. Asking for more steps extends the finished runs by resuming them.
    calls.clear()
    longer = _tiny_suite(num_steps=4)
    assert {j.state for j in plan(longer, layout) if j.kind == "train"} == {"resume"}
    assert run_suite(longer, runs, results, show_progress=False) == 0
    assert sorted(calls) == [("grpo", True), ("poly_epo", True)]
    assert _steps(grpo) == [1, 2, 3, 4]

    # The tidy CSVs, the README and the figures are written from what is on disk.
    out = results / "tiny"
    training = pd.read_csv(out / "training_metrics.csv")
    assert list(training.columns) == ["env", "agent", "seed", "step", "metric", "value"]
    dc = training[training.metric == "distinct_correct_per_prompt"]
    assert sorted(dc.groupby("agent").step.apply(list).to_dict().items()) == [("grpo", [1, 2, 3, 4]),
                                                                              ("poly_epo", [1, 2, 3, 4])]
    evaluation = pd.read_csv(out / "eval_metrics.csv")
    assert list(evaluation.columns) == ["env", "agent", "seed", "checkpoint", "metric", "k", "value"]
    pk = evaluation[evaluation.metric == "pass_at_k"]
    assert set(pk.agent) == {"base", "grpo", "poly_epo"} and sorted(set(pk.k)) == [1, 2, 4, 8]
    shares = evaluation[evaluation.metric.isin(["pass_at_k", "maj_at_k", "majority_share", "accuracy"])]
    assert shares.value.between(0, 1).all()
    assert (pk.groupby(["agent"]).value.apply(lambda v: v.is_monotonic_increasing)).all()
    assert {"distinct_correct_per_prompt", "maj_at_k", "majority_share", "rare_correct_per_prompt"} <= set(
        evaluation.metric)
    assert (out / "pass_at_k.png").is_file() and (out / "branching.csv").is_file()
    readme = (out / "README.md").read_text()
    assert "Git commit" in readme and "Poly-EPO" in readme
    assert "rare correct strategies / prompt" in readme and "Rare strategies are correct strategies" in readme


def test_warm_started_bases_are_shared_between_suites_with_the_same_warm_start(tmp_path):
    demo, cpu = get_suite("demo"), get_suite("synthetic-cpu")
    bases = {}
    for suite in (demo, cpu):
        for job in plan(suite, Layout(suite.name, tmp_path / "runs", tmp_path / "results")):
            if job.kind == "warmstart":
                bases.setdefault(job.key, set()).add(job.payload["config"]["output_dir"])
    assert len(bases["Polynomial/warmstart"]) == 1  # demo reuses synthetic-cpu's Polynomial base
    assert len({d for v in bases.values() for d in v}) == len(cpu.envs)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
def test_pool_workers_exit_when_the_runner_is_killed(tmp_path):
    """A runner killed without shutting its pool down must not leave its worker processes behind."""
    script = (
        "import concurrent.futures as cf, multiprocessing, os, sys\n"
        "from benchmarks.scheduler import _init_pool_worker\n"
        "pool = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'),\n"
        "                              initializer=_init_pool_worker, initargs=(1,))\n"
        "print(pool.submit(os.getpid).result(timeout=120), flush=True)\n"
        "os._exit(0)  # like a kill: no pool shutdown\n"
    )
    log = tmp_path / "out.txt"
    with open(log, "w") as f:  # a file, not a pipe: a surviving worker would keep a pipe open and hang the test
        code = subprocess.run([sys.executable, "-c", script], stdout=f, stderr=subprocess.STDOUT, timeout=180,
                              cwd=Path(__file__).resolve().parents[1], check=False).returncode
    assert code == 0, log.read_text()[-2000:]
    worker = int(log.read_text().split()[-1])
    deadline = time.monotonic() + 30
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)  # the worker polls its parent every 0.5 s
    alive = _alive(worker)
    if alive:
        os.kill(worker, 9)
    assert not alive


# ---- the report: untracked by default, no machine paths ------------------------------------------------------------
def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout


def test_report_goes_to_runs_by_default_and_names_no_machine_path(tmp_path):
    from benchmarks.report import display_path, portable
    from benchmarks.run import main

    before = _git_status()
    assert main(["--suite", "demo", "--report-only", "--runs", str(tmp_path / "runs"), "--no-progress"]) == 0
    report = tmp_path / "runs" / "demo" / "report"
    assert sorted(p.name for p in report.iterdir()) == ["README.md", "branching.csv", "eval_metrics.csv",
                                                        "headline.json", "training_metrics.csv"]
    assert _git_status() == before  # the tracked tree (results/demo included) is untouched
    for name in ("README.md", "headline.json"):
        text = (report / name).read_text()
        for path in (str(tmp_path), str(REPO_ROOT), str(Path.home())):
            assert path not in text, (name, path)
    readme = (report / "README.md").read_text()
    assert "python -m benchmarks.plots path/to/this/folder" in readme
    assert "Command: `python -m benchmarks.run --suite demo --report-only --runs .../runs --no-progress`" in readme
    # the hand-written notes of the committed README are carried over
    committed = (REPO_ROOT / "results" / "demo" / "README.md").read_text()
    assert readme.split("kept when the runner rewrites this file -->")[1] == \
        committed.split("kept when the runner rewrites this file -->")[1]
    # paths inside the repository are written relative to it, the home directory as ~
    assert portable(f"see {REPO_ROOT}/results/demo and {Path.home()}/.cache") == "see results/demo and ~/.cache"
    assert display_path(REPO_ROOT / "results" / "demo") == "results/demo"


def test_report_settings_show_the_workers_the_runs_used(tmp_path):
    """A report rebuilt with --report-only shows the workers of the invocations that ran (from the ledger), not the
    suite's default."""
    from benchmarks.report import invocation_workers
    from benchmarks.run import main
    from benchmarks.suites import SUITES

    demo = SUITES["demo"]
    ledger = tmp_path / "runs" / "demo" / "ledger.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(json.dumps([{"command": "x", "wall_seconds": 1.0, "workers": 1, "threads_per_worker": 1}]))
    assert main(["--suite", "demo", "--report-only", "--runs", str(tmp_path / "runs"), "--no-progress"]) == 0
    readme = (tmp_path / "runs" / "demo" / "report" / "README.md").read_text()
    assert '"workers": 1,' in readme and demo.workers != 1
    assert invocation_workers(demo, []) == {"workers": demo.workers, "threads_per_worker": demo.threads_per_worker}
    mixed = [{"workers": 2, "threads_per_worker": 1}, {"workers": 1, "threads_per_worker": 1}, {"command": "old"}]
    assert invocation_workers(demo, mixed) == {"workers": [1, 2], "threads_per_worker": 1}


def test_update_results_and_out_exclude_each_other(capsys):
    from benchmarks.run import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--suite", "demo", "--update-results", "--out", "x", "--dry-run"])
    assert exit_info.value.code == 2 and "do not combine it with --out 'x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # abbreviations are refused
        main(["--suite", "demo", "--dry-ru"])
    assert "--dry-ru" in capsys.readouterr().err


def test_committed_results_name_no_machine_path():
    for path in (REPO_ROOT / "results").rglob("*"):
        if path.suffix in (".md", ".json", ".csv"):
            text = path.read_text()
            for prefix in ("/work/", "/root/", "/home/", "/Users/", "/tmp/"):
                assert prefix not in text, (path.relative_to(REPO_ROOT), prefix)


# ---- progress: one bar per stage ------------------------------------------------------------------------------------
def test_job_fraction_reads_each_stage_progress(tmp_path):
    from benchmarks.scheduler import Job, job_fraction

    path = tmp_path / "p.json"
    warm, ev = Job("warmstart", "w", {}), Job("eval", "e", {})
    assert job_fraction(warm, path) == 0.0  # nothing written yet
    # a warm start's stages in order: demonstrations 0-5%, training 5-85%, evaluation 85-95%, competence 95-100%
    path.write_text(json.dumps({"stage": "demonstrations", "done": 300, "total": 400}))
    assert job_fraction(warm, path) == pytest.approx(0.05 * 0.75)
    path.write_text(json.dumps({"stage": "warm start", "done": 50, "total": 100}))
    assert job_fraction(warm, path) == pytest.approx(0.05 + 0.80 * 0.5)
    path.write_text(json.dumps({"stage": "evaluation", "done": 1, "total": 2}))
    assert job_fraction(warm, path) == pytest.approx(0.85 + 0.10 * 0.5)
    path.write_text(json.dumps({"stage": "competence", "done": 1, "total": 4}))
    assert job_fraction(warm, path) == pytest.approx(0.95 + 0.05 * 0.25)
    path.write_text(json.dumps({"stage": "evaluation", "done": 1, "total": 2}))
    assert job_fraction(ev, path) == pytest.approx(0.5)
    path.write_text(json.dumps({"stage": "evaluation", "done": 2, "total": 2}))
    assert job_fraction(ev, path) == pytest.approx(0.99)  # full only once the job has returned
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "x"')  # a torn last line
    assert job_fraction(Job("train", "t", {"run_dir": str(run)}, steps=10), path) == 2.0


def test_report_progress_writes_only_when_a_runner_listens(tmp_path, monkeypatch):
    from agents.progress import ENV_VAR, read_progress, report_progress

    monkeypatch.delenv(ENV_VAR, raising=False)
    report_progress("evaluation", 1, 4)  # no listener: nothing happens
    path = tmp_path / "progress.json"
    monkeypatch.setenv(ENV_VAR, str(path))
    report_progress("evaluation", 1, 4)
    assert read_progress(path)["done"] == 1
    report_progress("evaluation", 2, 4)  # within a second of the last write: skipped
    assert read_progress(path)["done"] == 1
    report_progress("evaluation", 4, 4)  # the last one always lands
    assert read_progress(path)["done"] == 4


def test_runner_shows_one_progress_bar_per_stage(tmp_path, capsys):
    from benchmarks.run import run_suite

    assert run_suite(_tiny_suite(num_steps=2), tmp_path / "runs", show_progress=True) == 0
    out = capsys.readouterr().out
    final = {}
    for chunk in out.replace("\r", "\n").splitlines():
        for stage in ("warm start", "training", "evaluation"):
            if chunk.strip().startswith(stage + ":"):
                final[stage] = chunk.strip()
    assert final["warm start"].startswith("warm start: 100%") and "1.0/1 base" in final["warm start"]
    assert final["training"].startswith("training: 100%") and "4.0/4 step" in final["training"]
    assert final["evaluation"].startswith("evaluation: 100%") and "3.0/3 eval" in final["evaluation"]


def test_report_keeps_the_committed_rows_of_envs_without_runs(tmp_path):
    """A report rebuilt (--report-only) where only some envs have runs (here Multiplication) keeps the existing CSV
    rows of the others (Polynomial, Countdown) and replaces those of the envs it has runs for, in the suite's env
    order; the headline covers the kept envs too."""
    import pandas as pd

    from benchmarks.report import collect, keep_absent_envs
    from benchmarks.run import Layout, main
    from benchmarks.suites import get_suite

    suite = get_suite("synthetic-cpu")
    layout = Layout(suite=suite.name, runs_root=tmp_path / "runs", results_root=tmp_path / "results")
    layout.results.mkdir(parents=True)
    pd.DataFrame([("Countdown", "grpo", 0, 1, "distinct_correct_per_prompt", 0.2),
                  ("Multiplication", "grpo", 0, 1, "distinct_correct_per_prompt", 0.1),
                  ("Polynomial", "grpo", 0, 1, "distinct_correct_per_prompt", 0.5),
                  ("Polynomial", "grpo", 0, 2, "distinct_correct_per_prompt", 0.6)],
                 columns=["env", "agent", "seed", "step", "metric", "value"]).to_csv(
        layout.results / "training_metrics.csv", index=False)
    pd.DataFrame([("Countdown", "base", 0, "base", "pass_at_k", 1, 0.01),
                  ("Polynomial", "base", 0, "base", "pass_at_k", 1, 0.99),
                  ("Multiplication", "base", 0, "base", "pass_at_k", 1, 0.11)],
                 columns=["env", "agent", "seed", "checkpoint", "metric", "k", "value"]).to_csv(
        layout.results / "eval_metrics.csv", index=False)
    run = layout.runs / "Multiplication" / "grpo__s0"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1, "distinct_correct_per_prompt": 0.7}\n')
    ev = layout.runs / "Multiplication" / "eval" / "Multiplication" / "base.json"
    ev.parent.mkdir(parents=True)
    ev.write_text(json.dumps({"summary": [{"metric": "pass_at_k", "k": 1, "value": 0.93}]}))

    assert main(["--suite", "synthetic-cpu", "--report-only", "--runs", str(layout.runs_root), "--out",
                 str(layout.results_root), "--no-progress"]) == 0
    training = pd.read_csv(layout.results / "training_metrics.csv")
    assert [(r.env, r.step, r.value) for r in training.itertuples()] == [
        ("Polynomial", 1, 0.5), ("Polynomial", 2, 0.6), ("Multiplication", 1, 0.7), ("Countdown", 1, 0.2)]
    evaluation = pd.read_csv(layout.results / "eval_metrics.csv")
    assert [(r.env, r.value) for r in evaluation.itertuples()] == [
        ("Polynomial", 0.99), ("Multiplication", 0.93), ("Countdown", 0.01)]
    headline = json.loads((layout.results / "headline.json").read_text())
    assert headline["Polynomial"]["eval"]["Polynomial"]["pass@1"] == {"base": [0.99]}
    assert headline["Multiplication"]["eval"]["Multiplication"]["pass@1"] == {"base": [0.93]}
    # with every env's runs present, the runs alone count
    for env in ("Polynomial", "Countdown"):
        (layout.runs / env).mkdir()
    training, evaluation, _ = keep_absent_envs(suite, layout, *collect(suite, layout))
    assert set(training.env) == {"Multiplication"} and set(evaluation.env) == {"Multiplication"}


def _committed_settings(suite: str) -> dict:
    """The ``## Settings`` JSON block of results/<suite>/README.md (what the committed results ran with)."""
    text = (REPO_ROOT / "results" / suite / "README.md").read_text()
    block = text.split("## Settings", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return json.loads(block)


@pytest.mark.parametrize("suite_name", ["synthetic-cpu", "demo", "polynomial-long", "ablation-polychromic-correct",
                                        "ablation-grpo-div-lambda0.05", "ablation-grpo-div-lambda0.2"])
def test_polynomial_suites_match_the_settings_of_their_committed_results(suite_name):
    """Every suite with committed Polynomial results names the base and step budget those results ran on: a suite
    moved to a new base (or budget) without rerunning its results, or a pin that drifted, fails here."""
    suite = get_suite(suite_name)
    committed = {e["env_id"]: e for e in _committed_settings(suite_name)["envs"]}
    envs = [e for e in suite.envs if e.env_id == "PolySet-Polynomial-v0"]
    assert envs and "PolySet-Polynomial-v0" in committed
    for env in envs:
        as_json = json.loads(json.dumps({"warmstart": env.warmstart, "train": env.train}, default=str))
        assert committed[env.env_id]["warmstart"] == as_json["warmstart"]
        assert committed[env.env_id]["train"] == as_json["train"]


def test_polynomial_ablations_share_synthetic_cpus_polynomial_env(tmp_path):
    """The ablation suites run synthetic-cpu's Polynomial env itself (its newest base, step budget, evaluation and
    probe), one seed: their plans reuse synthetic-cpu's base folder, and each seed-0 run's config differs from
    synthetic-cpu's run of the same agent only in what it ablates (the objective, or GRPO+DIV's lambda)."""
    from benchmarks.suites import ABLATIONS, LAMBDA_SWEEP, POLYNOMIAL_BASE, SYNTHETIC_CPU

    def jobs(suite):
        return {j.key: j for j in plan(suite, Layout(suite.name, tmp_path / "runs"))}

    def train_config(suite, agent):
        config = dict(jobs(suite)[f"Polynomial/{agent}/s0"].payload["config"])
        config.pop("output_dir")  # the suite's own runs folder
        return config

    reference = SYNTHETIC_CPU.envs[0]
    assert reference.env_id == "PolySet-Polynomial-v0" and reference.warmstart == POLYNOMIAL_BASE
    base = jobs(SYNTHETIC_CPU)["Polynomial/warmstart"].payload["config"]["output_dir"]
    expected = {"poly_epo": {"objective": "polychromic_correct"}, "grpo_div": {}}
    for suite in (*ABLATIONS, *LAMBDA_SWEEP):
        (env,) = suite.envs
        assert env == reference and suite.seeds == (0,)
        assert jobs(suite)["Polynomial/warmstart"].payload["config"]["output_dir"] == base
        (agent,) = suite.agents
        lam = suite.agent_train.get("grpo_div", {}).get("diversity_lambda")
        changed = {**expected[agent], **({"diversity_lambda": lam} if lam is not None else {})}
        assert train_config(suite, agent) == {**train_config(SYNTHETIC_CPU, agent), **changed}
    assert sorted(s.agent_train["grpo_div"]["diversity_lambda"] for s in LAMBDA_SWEEP) == [0.05, 0.2]


def test_polynomial_long_stays_on_the_base_its_committed_results_ran_on():
    """polynomial-long was not rerun on the new Polynomial base: the suite keeps the previous base's warm start (so
    its runs dir and README settings match the code), while synthetic-cpu moved on to the new one."""
    from benchmarks.suites import POLYNOMIAL, POLYNOMIAL_BASE_V1

    long_env = get_suite("polynomial-long").envs[0]
    assert long_env.warmstart == POLYNOMIAL_BASE_V1
    assert _committed_settings("polynomial-long")["envs"][0]["warmstart"] == long_env.warmstart
    assert get_suite("synthetic-cpu").envs[0].warmstart == POLYNOMIAL.warmstart != POLYNOMIAL_BASE_V1
