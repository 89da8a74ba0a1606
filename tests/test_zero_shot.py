"""benchmarks.zero_shot: the script end to end on a tiny random model (subprocess, tiny arguments), --resume, and its
lenient diagnostic on hand-built records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rl_helpers import build_tiny_model_dir

from agents.evaluation import make_record
from benchmarks import zero_shot

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny"))


def test_zero_shot_script_then_resume_gives_the_same_records_as_one_run(tiny, tmp_path):
    args = ["--env", "PolySet-Polynomial-v0", "--model", str(tiny), "--num-samples", "3", "--max-new-tokens", "6"]
    out = tmp_path / "zs.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.zero_shot", *args, "--num-problems", "2",
                           "--output", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pass@1 = " in proc.stdout and "wrote" in proc.stdout
    first = json.loads(out.read_text())
    assert first["complete"] and len(first["problems"]) == 2 and first["summary"]["samples"] == 6
    assert [p["index"] for p in first["problems"]] == [0, 1]
    assert all(len(p["texts"]) == 3 and len(p["new_tokens"]) == 3 for p in first["problems"])
    assert first["summary"]["accuracy"] == sum(sum(p["correct"]) for p in first["problems"]) / 6

    # --resume with more problems samples only the new one; the result equals one uninterrupted run.
    resumed = zero_shot.main([*args, "--num-problems", "3", "--output", str(out), "--resume"])
    fresh = zero_shot.main([*args, "--num-problems", "3", "--output", str(tmp_path / "fresh.json")])
    assert resumed["problems"][:2] == first["problems"]
    assert [p["texts"] for p in resumed["problems"]] == [p["texts"] for p in fresh["problems"]]
    assert {k: v for k, v in resumed["summary"].items()} == fresh["summary"]
    with pytest.raises(SystemExit, match="other settings"):
        zero_shot.main([*args[:-1], "7", "--num-problems", "3", "--output", str(out), "--resume"])


def test_lenient_pass_at_k_reads_the_last_number():
    assert zero_shot.last_number_correct("so 3 + 4 = 1,234", "1234")
    assert not zero_shot.last_number_correct("42 then 41", "42")
    records = [make_record(problem_id=f"p{i}", correct=[False] * 4, strategies=[-1] * 4, answers=[None] * 4,
                           rewards=[0.0] * 4, token_ids=[[1, 2]] * 4, truncated=[True, False, False, False],
                           errors=["no \\boxed{} answer"] * 4, texts=texts, reference="18")
               for i, texts in enumerate([["x = 18", "17", "no", "18.0"], ["1", "2", "3", "4"]])]
    s = zero_shot.summarise(records, lenient=True)
    assert s["last_number_pass@1"] == pytest.approx((2 / 4 + 0) / 2)
    assert s["last_number_pass@4"] == pytest.approx((1 + 0) / 2)
    assert s["pass@4"] == 0.0 and s["share_with_answer"] == 0.0
    assert s["share_hit_max_new_tokens"] == pytest.approx(2 / 8)
    assert s["error_counts"] == {"no \\boxed{} answer": 8}
