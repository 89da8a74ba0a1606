"""A cached evaluation is reused only for the model it was made from: same signature and not older than the model's
files (an extended training run rewrites ``final/`` at the same path)."""

import json
import os

from benchmarks.evaluate import eval_signature, load_cached
from benchmarks.suites import EvalTarget


def test_a_cached_evaluation_older_than_the_model_is_not_reused(tmp_path):
    model = tmp_path / "run" / "final"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"12 steps")
    target = EvalTarget("PolySet-Polynomial-v0", num_problems=2, num_samples=2)
    sig = eval_signature(model, target, 0, 0.05, None)
    out = tmp_path / "eval.json"
    out.write_text(json.dumps({"signature": sig, "summary": [{"metric": "accuracy", "k": 1, "value": 0.5}]}))
    stamp = model.stat().st_mtime_ns
    os.utime(model / "model.safetensors", ns=(stamp - 10**9, stamp - 10**9))
    assert load_cached(out, sig)["summary"][0]["value"] == 0.5  # evaluated after the model was written: reused
    assert load_cached(out, eval_signature(model, target, 1, 0.05, None)) is None  # another seed
    os.utime(model / "model.safetensors", ns=(stamp + 10**9, stamp + 10**9))  # the run was extended afterwards
    assert load_cached(out, sig) is None
    assert load_cached(out, eval_signature("smollm2-135m", target, 0, 0.05, None)) is None  # signature differs


def test_a_report_written_next_to_the_model_after_its_evaluation_keeps_the_cache(tmp_path):
    model = tmp_path / "bases" / "Countdown"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "config.json").write_text("{}")
    target = EvalTarget("PolySet-Polynomial-v0", num_problems=2, num_samples=2)
    sig = eval_signature(model, target, 0, 0.05, None)
    out = tmp_path / "base.json"
    out.write_text(json.dumps({"signature": sig, "summary": [{"metric": "accuracy", "k": 1, "value": 0.25}]}))
    stamp = out.stat().st_mtime_ns
    for name in ("model.safetensors", "config.json"):
        os.utime(model / name, ns=(stamp - 10**9, stamp - 10**9))
    (model / "probe_base.json").write_text("{}")  # the probe's report on the base, written after the evaluation
    os.utime(model / "probe_base.json", ns=(stamp + 10**9, stamp + 10**9))
    assert load_cached(out, sig)["summary"][0]["value"] == 0.25
    os.utime(model / "config.json", ns=(stamp + 10**9, stamp + 10**9))  # the model itself was rewritten
    assert load_cached(out, sig) is None
