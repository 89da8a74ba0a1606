"""Peak memory of a training run: the README's default command, run for a few steps in a child process.

    python -m benchmarks.bench_memory                                  # default config, 2 steps, 2 threads
    python -m benchmarks.bench_memory --max-steps 1 -- --per-device-train-batch-size 16
    python -m benchmarks.bench_memory --output results/bench/memory_default.json

Prints the child's peak resident set size (``ru_maxrss`` of the finished child, the kernel's own high-water mark),
the trainer's pre-flight estimate (``agents.memory``) and the wall time. Arguments after ``--`` go to
``python -m agents.train`` (which runs ``--env PolySet-Polynomial-v0 --agent poly_epo --model smollm2-135m`` and
the default ``TrainConfig`` otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from agents.run_dir import read_metrics

DEFAULT_COMMAND = ["--env", "PolySet-Polynomial-v0", "--agent", "poly_epo", "--model", "smollm2-135m"]


def run(max_steps: int, num_threads: int, extra: list[str]) -> dict:
    """Train for ``max_steps`` in a child process and return its peak RSS, the estimate and the timings."""
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as out:
        cmd = [sys.executable, "-m", "agents.train", *DEFAULT_COMMAND, "--max-steps", str(max_steps),
               "--num-threads", str(num_threads), "--output-dir", out, "--run-name", "bench", "--no-progress", *extra]
        env = {**os.environ, "OMP_NUM_THREADS": str(num_threads), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
        start = time.perf_counter()
        log = Path(out) / "stderr.log"  # a file, not a pipe: a full pipe would stall the child
        with open(log, "w") as err:
            child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        sampled = 0
        proc = psutil.Process(child.pid)
        while child.poll() is None:  # sampled RSS: a cross-check of the kernel's figure below
            try:
                sampled = max(sampled, proc.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
        child.wait()
        stderr = log.read_text()
        wall = time.perf_counter() - start
        if child.returncode != 0:
            raise SystemExit(f"training failed (exit {child.returncode}):\n{stderr[-3000:]}")
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB, the largest child's peak
        match = re.search(r"memory: estimated peak ([0-9.]+) GiB per process, ([0-9.]+) GiB available", stderr)
        rows = read_metrics(Path(out) / "bench")
    return {
        "command": "python -m agents.train " + " ".join(DEFAULT_COMMAND + ["--max-steps", str(max_steps),
                                                                            "--num-threads", str(num_threads), *extra]),
        "max_steps": max_steps,
        "num_threads": num_threads,
        "peak_rss_gib": round(peak_kib / 2**20, 2),
        "sampled_peak_rss_gib": round(sampled / 2**30, 2),
        "estimated_peak_gib": float(match.group(1)) if match else None,
        "wall_s": round(wall, 1),
        "step_time_s": [round(r["time_step"], 1) for r in rows],
        "mean_response_length": [round(r["mean_response_length"], 1) for r in rows],
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--num-threads", type=int, default=2)
    parser.add_argument("--output", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = run(args.max_steps, args.num_threads, extra)
    print(f"{result['command']}\n  peak RSS {result['peak_rss_gib']:.2f} GiB (sampled {result['sampled_peak_rss_gib']:.2f}),"
          f" pre-flight estimate {result['estimated_peak_gib']} GiB, {result['wall_s']:.0f} s for "
          f"{result['max_steps']} steps (step times {result['step_time_s']} s)")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
