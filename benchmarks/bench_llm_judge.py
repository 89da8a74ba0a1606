"""The llm judge with structured output on the committed judge-agreement sets: share of valid replies, agreement with
the exact oracle, cost per set.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_llm_judge                       # local SmolLM2-135M, constrained
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_llm_judge --unstructured --sets 5   # free JSON generation, for contrast

Reads ``results/judge_agreement/sets_<domain>.jsonl`` (20 sets of 8 generations per synthetic domain, with their
oracle labels, written by ``benchmarks/judge_agreement.py``), rebuilds each set's prompt from its problem id,
verifies the generations with the env (the judge sees only what the env does not flag degenerate) and labels every
set with one llm-judge call (no retry, fallback = embedding judge, the same one-sentence domain hints). Per set it
records whether the reply was valid (no fallback), the adjusted Rand index against the oracle over the scored
generations, and the wall time. Rows are appended to ``--out`` as sets finish, and a rerun skips the sets already
there.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Any

from benchmarks.judge_agreement import DOMAINS, HINTS, agreement

FIELDS = ["domain", "problem_id", "mode", "valid", "ari", "oracle_clusters", "judge_clusters", "n_scored", "seconds",
          "labels", "oracle"]


def load_sets(sets_dir: Path, domain: str, limit: int | None) -> list[dict[str, Any]]:
    with open(sets_dir / f"sets_{domain}.jsonl") as fh:
        sets = [json.loads(line) for line in fh]
    return sets[:limit] if limit else sets


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--sets-dir", default="results/judge_agreement", help="where the sets_<domain>.jsonl files are")
    p.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=list(DOMAINS))
    p.add_argument("--sets", type=int, default=None, help="sets per domain (default: all)")
    p.add_argument("--model", default="smollm2-135m", help="local judge model")
    p.add_argument("--unstructured", action="store_true", help="free JSON generation instead of constrained labels")
    p.add_argument("--max-new-tokens", type=int, default=256, help="unstructured mode: answer length limit")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default="results/judge_agreement/llm_structured.csv")
    args = p.parse_args(argv)

    import gymnasium as gym
    import torch

    import polyenv  # noqa: F401
    from polyenv.judges import JudgeRequest, get_judge

    torch.set_num_threads(args.threads)
    mode = "unstructured" if args.unstructured else "constrained"
    out = Path(args.out)
    rows: list[dict[str, Any]] = []
    if out.exists():
        with open(out) as fh:
            rows = list(csv.DictReader(fh))
    done = {(r["problem_id"], r["mode"]) for r in rows}
    new_file = not out.exists()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        for domain in args.domains:
            env = gym.make(DOMAINS[domain], split="test").unwrapped
            judge = get_judge("llm", model=args.model, device="cpu", max_retries=0, domain_hint=HINTS[domain],
                              structured=not args.unstructured, max_new_tokens=args.max_new_tokens, timeout=3600.0)
            judge.backend.load()  # model loading is not part of the cost per set
            for s in load_sets(Path(args.sets_dir), domain, args.sets):
                if (s["problem_id"], mode) in done:
                    continue
                env.reset(options={"index": int(s["problem_id"].rsplit("/", 1)[1])})
                results = env.verify(s["generations"])
                t0 = time.perf_counter()
                before = judge.stats["fallbacks"]
                (labels,) = judge.label([JudgeRequest(env.problem.prompt, s["generations"], results)])
                seconds = time.perf_counter() - t0
                scored = [not r.degenerate for r in results]
                ari, _, n_oracle, n_judge = agreement(s["oracle"], labels, scored)
                row = {"domain": domain, "problem_id": s["problem_id"], "mode": mode,
                       "valid": judge.stats["fallbacks"] == before, "ari": ari, "oracle_clusters": n_oracle,
                       "judge_clusters": n_judge, "n_scored": sum(scored), "seconds": round(seconds, 2),
                       "labels": " ".join(map(str, labels)), "oracle": " ".join(map(str, s["oracle"]))}
                writer.writerow(row)
                fh.flush()
                rows.append(row)
                print(f"[{domain}] {s['problem_id']}: valid={row['valid']} ari={ari:.2f} {seconds:.1f} s", flush=True)
    summarise(rows)
    return rows


def summarise(rows: list[dict[str, Any]]) -> None:
    print(f"{'domain':15s} {'mode':13s} {'sets':>4s} {'valid':>6s} {'ARI':>6s} {'s/set':>6s}")
    keys = sorted({(r["domain"], r["mode"]) for r in rows})
    for domain, mode in keys:
        rs = [r for r in rows if r["domain"] == domain and r["mode"] == mode]
        valid = sum(str(r["valid"]) == "True" for r in rs) / len(rs)
        aris = [float(r["ari"]) for r in rs if not math.isnan(float(r["ari"]))]
        ari = sum(aris) / len(aris) if aris else math.nan
        sec = sum(float(r["seconds"]) for r in rs) / len(rs)
        print(f"{domain:15s} {mode:13s} {len(rs):4d} {valid:6.0%} {ari:6.2f} {sec:6.1f}")


if __name__ == "__main__":
    main()
