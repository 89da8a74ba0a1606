"""How far to trust a strategy judge: agreement of the answer, embedding and llm judges with the exact oracles.

    HF_HUB_OFFLINE=1 python -m benchmarks.judge_agreement                          # 20 sets x 8 per domain (~20 min)
    HF_HUB_OFFLINE=1 python -m benchmarks.judge_agreement --sets 3 --no-llm        # quick look
    HF_HUB_OFFLINE=1 python -m benchmarks.judge_agreement --sweep --no-llm         # embedding threshold sweep

For each synthetic domain (Polynomial, Multiplication, Countdown), ``--sets`` problems of the held-out test split get
one set each of ``--demos`` + ``--samples`` generations, shuffled:

- ``--demos`` worked solutions written for that problem by the domain (``env.unwrapped._write_demonstration``),
  their families drawn uniformly from the domain's demonstration families, so a set holds several strategies, some
  repeated (identical strategies written in the domain's template);
- ``--samples`` samples of the untrained SmolLM2-135M-Instruct (chat template, temperature 1.0, 128 new tokens).
  It solves none of the polynomial prompts (results/zero_shot/), so its samples alone carry almost no strategy structure
  for the oracle to label; they add real, messy model text (wrong pairs, degenerate rambling) to the structured sets.

Each set is verified by the env, then labelled by the oracle (``strategy_key``), the answer judge, the embedding judge
(packaged MiniLM, default threshold) and the llm judge (local SmolLM2-135M-Instruct, greedy, one retry, fallback =
embedding, a one-sentence domain hint). Scores per set, over the generations the verifier did not flag degenerate
(no judge sees those): the adjusted Rand index against the oracle (a judge's own "degenerate" bucket counts as one
cluster) and the absolute error in the number of distinct non-degenerate strategies (the polychromic objective's
diversity numerator). The llm rows also count how many sets fell back to the embedding judge, and give the ARI over
the sets it answered itself.

Writes ``runs/judge_agreement/judge_agreement.csv`` (``--out results/judge_agreement`` updates the committed result;
one row per set and judge; rewritten after each domain, and
``--resume`` keeps finished domains), ``summary.csv`` and ``sets_<domain>.jsonl`` (the generated sets with oracle
labels), and prints the summary table. ``--sweep`` prints, instead,
the embedding judge's ARI and count error for a range of thresholds on the generated sets and on a small hand-written
set of maths solution sketches (six problems x three named methods x two paraphrases), which is how the default
threshold was chosen.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyenv.objectives import DEGENERATE

DOMAINS = {
    "polynomial": "PolySet-Polynomial-v0",
    "multiplication": "PolySet-Multiplication-v0",
    "countdown": "PolySet-Countdown-v0",
}
HINTS = {
    "polynomial": "the (x, y) pair the response gives; responses giving the same pair use one strategy and "
                  "different pairs are different strategies",
    "multiplication": "how the factors are decomposed: which factor is split, into which parts, added or "
                      "subtracted, or factorised",
    "countdown": "the arithmetic expression used, where reordering the terms of a sum or the factors of a product "
                 "does not change the strategy",
}
JUDGES = ("answer", "embedding", "llm")

# Hand-written calibration data for the embedding threshold: problem -> [(method, solution sketch)].
CALIBRATION: dict[str, list[tuple[str, str]]] = {
    "Solve x^2 - 5x + 6 = 0.": [
        ("factor", "Factor the quadratic: x^2 - 5x + 6 = (x - 2)(x - 3), so x = 2 or x = 3."),
        ("factor", "We look for two numbers with product 6 and sum 5, namely 2 and 3, giving (x-2)(x-3) = 0 and "
                   "roots 2, 3."),
        ("formula", "Use the quadratic formula x = (5 ± sqrt(25 - 24)) / 2 = (5 ± 1) / 2, which gives 3 and 2."),
        ("formula", "The discriminant is b^2 - 4ac = 1, so by the formula the roots are (5 + 1)/2 = 3 and "
                    "(5 - 1)/2 = 2."),
        ("square", "Complete the square: x^2 - 5x = -6 becomes (x - 5/2)^2 = 25/4 - 6 = 1/4, so x - 5/2 = ±1/2."),
        ("square", "Rewrite as (x - 2.5)^2 - 0.25 = 0 by completing the square; taking square roots gives "
                   "x = 2.5 ± 0.5."),
    ],
    "Compute 1 + 2 + ... + 100.": [
        ("pair", "Pair the first and last terms: 1 + 100, 2 + 99, and so on; there are 50 pairs each summing to 101, "
                 "so 5050."),
        ("pair", "Write the sum forwards and backwards and add column by column: every column is 101, 100 columns, "
                 "half of 10100 is 5050."),
        ("formula", "The sum of the first n integers is n(n+1)/2, which can be proved by induction on n; with "
                    "n = 100 it is 5050."),
        ("formula", "By the triangular number formula T_n = n(n + 1)/2, proved inductively, T_100 = 100 * 101 / 2 = "
                    "5050."),
        ("blocks", "Add by decades: 1..10 sums to 55, each next block of ten adds 100 more, so 55 + 155 + ... + 955 "
                   "= 5050."),
        ("blocks", "Split into ten groups of ten consecutive numbers; group k sums to 100k - 45, and summing these "
                   "ten group totals gives 5050."),
    ],
    "What is the probability of at least one six in four rolls of a fair die?": [
        ("complement", "Use the complement: the chance of no six in four rolls is (5/6)^4, so the answer is "
                       "1 - 625/1296 = 671/1296."),
        ("complement", "P(at least one six) = 1 - P(no sixes at all) = 1 - (5/6)^4 = 671/1296, about 0.518."),
        ("cases", "Count by the exact number of sixes k = 1..4 with binomial terms C(4,k)(1/6)^k(5/6)^(4-k) and add "
                  "them up: 671/1296."),
        ("cases", "Sum the binomial probabilities of exactly one, two, three and four sixes: 500 + 150 + 20 + 1 over "
                  "1296 = 671/1296."),
        ("inclusion", "Apply inclusion-exclusion over the events A_i = 'roll i is a six': 4/6 - 6/36 + 4/216 - "
                      "1/1296 = 671/1296."),
        ("inclusion", "By the inclusion-exclusion principle for the union of the four six-events, alternate sums of "
                      "intersections give 671/1296."),
    ],
    "Find the area of the triangle with sides 13, 14 and 15.": [
        ("heron", "Heron's formula: the semi-perimeter is s = 21, so the area is sqrt(21 * 8 * 7 * 6) = sqrt(7056) "
                  "= 84."),
        ("heron", "With s = (13 + 14 + 15)/2 = 21, Heron gives A = sqrt(s(s-a)(s-b)(s-c)) = 84."),
        ("altitude", "Drop the altitude to the side of length 14; it splits it into 5 and 9, and Pythagoras gives "
                     "height 12, so the area is 14*12/2 = 84."),
        ("altitude", "Let h be the height onto the base 14. From 13^2 - x^2 = 15^2 - (14 - x)^2 we get x = 5 and "
                     "h = 12, hence area 84."),
        ("coordinates", "Place the vertices at (0,0), (14,0) and (5,12) in the coordinate plane and use the shoelace "
                        "formula: area 84."),
        ("coordinates", "Put B = (0, 0), C = (14, 0), solve for A = (5, 12) from the distances, then the determinant "
                        "formula gives 84."),
    ],
    "Is 391 prime?": [
        ("trial", "Try dividing by every prime up to sqrt(391) ≈ 19.8: 2, 3, 5, 7, 11, 13 fail, but 17 divides it, "
                  "391 = 17 * 23."),
        ("trial", "Trial division by the small primes in order finds that 391 / 17 = 23, so 391 is composite."),
        ("squares", "Notice 391 = 400 - 9 = 20^2 - 3^2, a difference of squares, so 391 = (20 - 3)(20 + 3) = "
                    "17 * 23."),
        ("squares", "Write 391 as 20 squared minus 3 squared and factor it as (20-3)(20+3); therefore it is not "
                    "prime."),
        ("fermat", "Run Fermat's little theorem test: compute 2^390 mod 391 by repeated squaring; it is not 1, so "
                   "391 is composite."),
        ("fermat", "A Fermat primality test with base 2 shows 2^(390) is not congruent to 1 modulo 391, proving 391 "
                   "is not prime."),
    ],
    "Find the distance from the point (1, 2) to the line 3x + 4y - 1 = 0.": [
        ("formula", "Use the point-to-line distance formula |3*1 + 4*2 - 1| / sqrt(3^2 + 4^2) = 10 / 5 = 2."),
        ("formula", "Plug the point into |ax0 + by0 + c| / sqrt(a^2 + b^2): |3 + 8 - 1| / 5 = 2."),
        ("projection", "Take a point on the line, (-1, 1), form the vector to (1, 2), and project it onto the unit "
                       "normal (3, 4)/5: length 2."),
        ("projection", "Project the vector from a point of the line to P onto the normal direction n = (3,4)/|n|; "
                       "the projection has length 2."),
        ("foot", "Write the perpendicular line through (1, 2) with direction (3, 4), intersect it with the given "
                 "line at the foot, then measure: 2."),
        ("foot", "Find the foot of the perpendicular by solving the two line equations together, then the distance "
                 "between P and the foot is 2."),
    ],
}


# ---- sets -------------------------------------------------------------------------------------------------------
def write_demos(env: Any, task: dict[str, Any], count: int, rng: np.random.Generator) -> list[str]:
    """``count`` worked solutions of one problem, families drawn uniformly (retrying families that have none)."""
    families = list(env.default_strategy_weights)
    out: list[str] = []
    for _ in range(50 * count):
        if len(out) == count:
            break
        written = env._write_demonstration(task, families[int(rng.integers(0, len(families)))], rng)
        if written is not None:
            out.append(written[0])
    return out


def build_sets(domain: str, n_sets: int, n_demos: int, n_samples: int, policy: Any, seed: int
               ) -> list[dict[str, Any]]:
    """One set per test problem: demos + SmolLM2 samples, shuffled, verified; with oracle labels."""
    import gymnasium as gym

    env = gym.make(DOMAINS[domain], split="test").unwrapped
    rng = np.random.default_rng(seed)
    problems = [env.get_problem(i) for i in range(n_sets)]
    samples: list[list[str]] = [[] for _ in problems]
    if n_samples and policy is not None:
        rollouts = policy.generate([p.prompt for p in problems], num_generations=n_samples, temperature=1.0,
                                   max_new_tokens=128, seed=seed)
        samples = rollouts.groups()
    sets = []
    for i, (problem, extra) in enumerate(zip(problems, samples)):
        gens = [(g, "demo") for g in write_demos(env, problem.task, n_demos, rng)] + [(g, "smollm2") for g in extra]
        order = rng.permutation(len(gens))
        gens = [gens[k] for k in order]
        env.reset(options={"index": i})
        results = env.verify([g for g, _ in gens])
        (oracle,) = env.judge.label([_request(problem.prompt, [g for g, _ in gens], results)])
        sets.append({"domain": domain, "problem_id": problem.id, "prompt": problem.prompt,
                     "generations": [g for g, _ in gens], "sources": [s for _, s in gens], "results": results,
                     "oracle": oracle, "errors": [r.error for r in results]})
    return sets


def _request(prompt: str, generations: list[str], results: list[Any]) -> Any:
    from polyenv.judges import JudgeRequest

    return JudgeRequest(prompt, generations, results)


# ---- scores -----------------------------------------------------------------------------------------------------
def distinct(labels: Sequence[int]) -> int:
    return len({x for x in labels if x != DEGENERATE})


def agreement(oracle: Sequence[int], judged: Sequence[int], scored: Sequence[bool]) -> tuple[float, int, int, int]:
    """(ARI, |count error|, oracle count, judge count) over the generations the verifier scored (``scored``)."""
    from sklearn.metrics import adjusted_rand_score

    o = [x for x, s in zip(oracle, scored) if s]
    j = [x for x, s in zip(judged, scored) if s]
    ari = float(adjusted_rand_score(o, j)) if len(o) >= 2 else math.nan
    return ari, abs(distinct(j) - distinct(o)), distinct(o), distinct(j)


def make_judge(name: str, domain: str, args: argparse.Namespace) -> Any:
    from polyenv.judges import get_judge

    if name == "llm":
        return get_judge("llm", model=args.llm_model, max_new_tokens=args.llm_max_new_tokens, max_retries=1,
                         batch_size=8, domain_hint=HINTS[domain], device=args.device, timeout=3600.0)
    if name == "embedding":
        return get_judge("embedding", device=args.device)
    return get_judge(name)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Build the sets, label them with every judge; one row per (set, judge). After each domain the rows so far are
    written out, and ``--resume`` keeps the domains an earlier run already finished."""
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = read_rows(out_dir / "judge_agreement.csv") if args.resume else []
    done = {r["domain"] for r in rows}
    todo = [d for d in args.domains if d not in done]
    if done:
        print(f"resuming: keeping {len(rows)} rows of {sorted(done)}", flush=True)
    policy = None
    if args.samples and todo:
        from agents.policy import Policy

        policy = Policy.from_pretrained("smollm2-135m", device=args.device)
    judges = [j for j in JUDGES if not (args.no_llm and j == "llm")]
    for domain in todo:
        t0 = time.perf_counter()
        sets = build_sets(domain, args.sets, args.demos, args.samples, policy,
                          args.seed + list(DOMAINS).index(domain))
        print(f"[{domain}] built {len(sets)} sets in {time.perf_counter() - t0:.0f} s", flush=True)
        with open(out_dir / f"sets_{domain}.jsonl", "w") as sets_file:
            sets_file.writelines(json.dumps({k: s[k] for k in ("domain", "problem_id", "generations", "sources",
                                                               "oracle", "errors")}) + "\n" for s in sets)
        requests = [_request(s["prompt"], s["generations"], s["results"]) for s in sets]
        for name in judges:
            judge = make_judge(name, domain, args)
            t0 = time.perf_counter()
            labels = judge.label(requests)
            seconds = time.perf_counter() - t0
            fallback = list(getattr(judge, "last_fallback", [])) or [False] * len(sets)
            print(f"[{domain}] {name}: {seconds:.0f} s, stats {dict(judge.stats)}", flush=True)
            for err in getattr(judge, "last_errors", [])[:3]:
                print(f"[{domain}] {name} fell back after: {err}", flush=True)
            for s, lab, fb in zip(sets, labels, fallback):
                scored = [not r.degenerate for r in s["results"]]
                ari, err, n_oracle, n_judge = agreement(s["oracle"], lab, scored)
                rows.append({"domain": domain, "problem_id": s["problem_id"], "judge": name,
                             "n_generations": len(lab), "n_scored": sum(scored),
                             "n_samples_scored": sum(sc and src == "smollm2" for sc, src in zip(scored, s["sources"])),
                             "oracle_clusters": n_oracle, "judge_clusters": n_judge, "ari": ari,
                             "count_abs_error": err, "fallback": bool(fb), "seconds_per_set": seconds / len(sets),
                             "labels": " ".join(map(str, lab)), "oracle": " ".join(map(str, s["oracle"]))})
        write_csv(out_dir / "judge_agreement.csv", rows)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of an earlier run's CSV, with their numeric and boolean columns restored."""
    if not path.is_file():
        return []
    ints = ("n_generations", "n_scored", "n_samples_scored", "oracle_clusters", "judge_clusters", "count_abs_error")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.update({k: int(r[k]) for k in ints})
        r.update(ari=float(r["ari"]), seconds_per_set=float(r["seconds_per_set"]), fallback=r["fallback"] == "True")
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = sorted({(r["domain"], r["judge"]) for r in rows}, key=lambda k: (list(DOMAINS).index(k[0]),
                                                                            JUDGES.index(k[1])))
    for domain, judge in keys:
        rs = [r for r in rows if r["domain"] == domain and r["judge"] == judge]
        aris = [r["ari"] for r in rs if not math.isnan(r["ari"])]
        own = [r["ari"] for r in rs if not r["fallback"] and not math.isnan(r["ari"])]
        out.append({
            "domain": domain, "judge": judge, "sets": len(rs),
            "mean_scored": float(np.mean([r["n_scored"] for r in rs])),
            "mean_oracle_clusters": float(np.mean([r["oracle_clusters"] for r in rs])),
            "mean_judge_clusters": float(np.mean([r["judge_clusters"] for r in rs])),
            "mean_ari": float(np.mean(aris)) if aris else math.nan,
            "count_mae": float(np.mean([r["count_abs_error"] for r in rs])),
            "fallback_sets": sum(r["fallback"] for r in rs),
            "mean_ari_own_answers": float(np.mean(own)) if own else math.nan,
            "seconds_per_set": float(np.mean([r["seconds_per_set"] for r in rs])),
        })
    return out


def print_table(summary: list[dict[str, Any]]) -> None:
    head = (f"{'domain':<15}{'judge':<11}{'sets':>5}{'scored':>8}{'oracle k':>10}{'judge k':>9}{'ARI':>7}"
            f"{'|dk|':>7}{'fallbk':>8}{'ARI own':>9}{'s/set':>7}")
    print(head)
    print("-" * len(head))
    for r in summary:
        print(f"{r['domain']:<15}{r['judge']:<11}{r['sets']:>5}{r['mean_scored']:>8.2f}"
              f"{r['mean_oracle_clusters']:>10.2f}{r['mean_judge_clusters']:>9.2f}{r['mean_ari']:>7.3f}"
              f"{r['count_mae']:>7.2f}{r['fallback_sets']:>8}{r['mean_ari_own_answers']:>9.3f}"
              f"{r['seconds_per_set']:>7.2f}")


def sweep(args: argparse.Namespace) -> None:
    """Embedding judge: mean ARI and count error per threshold, on the hand-written set and the generated sets."""
    from polyenv.judges.embedding import EmbeddingJudge

    judge = EmbeddingJudge(device=args.device)
    thresholds = [round(t, 2) for t in np.arange(0.10, 0.71, 0.05)]
    groups: dict[str, list[tuple[list[Any], np.ndarray]]] = {
        "hand-written": [([m for m, _ in v], judge.embed([t for _, t in v])) for v in CALIBRATION.values()]}
    for d, domain in enumerate(args.domains):
        groups[domain] = []
        for s in build_sets(domain, args.sets, args.demos, 0, None, args.seed + d):
            keep = [i for i, r in enumerate(s["results"]) if not r.degenerate]
            groups[domain].append(([s["oracle"][i] for i in keep], judge.embed([s["generations"][i] for i in keep])))
    print(f"{'threshold':>9}" + "".join(f"{g + ' ARI':>22}{'|dk|':>6}" for g in groups))
    for t in thresholds:
        judge.threshold = t
        line = f"{t:>9.2f}"
        for items in groups.values():
            scores = [agreement(truth, judge.cluster_embeddings(e), [True] * len(truth)) for truth, e in items]
            line += f"{np.nanmean([s[0] for s in scores]):>22.3f}{np.mean([s[1] for s in scores]):>6.2f}"
        print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=list(DOMAINS))
    p.add_argument("--sets", type=int, default=20, help="sets (test problems) per domain")
    p.add_argument("--demos", type=int, default=6, help="worked solutions per set")
    p.add_argument("--samples", type=int, default=2, help="SmolLM2 samples per set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-llm", action="store_true", help="skip the llm judge")
    p.add_argument("--llm-model", default="smollm2-135m", help="llm judge model (e.g. Qwen/Qwen3-4B-Instruct-2507)")
    p.add_argument("--llm-max-new-tokens", type=int, default=256)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy 2-core box)")
    p.add_argument("--sweep", action="store_true", help="embedding threshold sweep instead of the comparison")
    p.add_argument("--out", default="runs/judge_agreement",
                   help="output folder (results/judge_agreement is the committed one)")
    p.add_argument("--resume", action="store_true", help="keep the domains already in OUT/judge_agreement.csv")
    args = p.parse_args(argv)
    if min(args.sets, args.demos) < 1 or args.samples < 0:
        p.error(f"need --sets >= 1, --demos >= 1, --samples >= 0; got {args.sets}, {args.demos}, {args.samples}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    if args.sweep:
        sweep(args)
        return
    t0 = time.perf_counter()
    rows = run(args)
    summary = summarise(rows)
    out = Path(args.out)
    write_csv(out / "summary.csv", summary)
    print(f"\n{len(rows)} rows -> {out / 'judge_agreement.csv'} ({time.perf_counter() - t0:.0f} s)\n")
    print_table(summary)


if __name__ == "__main__":
    main()
