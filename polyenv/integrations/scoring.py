"""Score groups of generations the way ``env.step`` does, for engines that batch many prompts at once.

    env = gym.make("PolySet-Math-v0", judge="llm")
    infos = score_groups(env, problem_indices, groups)          # one info dict per group, as env.step returns
    adv = group_advantages("poly_epo", infos, set_size=4, objective=env.unwrapped.objective)   # (G, N)

The judge is called once for all groups (one request per prompt, as in the paper); the verifier runs per generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from polyenv.core import SetEnv
from polyenv.judges import JudgeRequest


def score_groups(env: Any, indices: Sequence[int], groups: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """``env.step``'s ``info`` for each (problem index, generations) pair, with a single batched judge call.

    ``env`` is a PolySet env (wrapped or not); ``indices[g]`` is the problem index (``reset(options={"index": i})``)
    that group ``g`` answers. Rewards, strategies and the set reward are exactly what ``env.step`` returns after
    ``env.reset(options={"index": indices[g]})``. The env is left reset to the last group's problem.
    """
    base: SetEnv = getattr(env, "unwrapped", env)
    if not isinstance(base, SetEnv):
        raise TypeError(f"score_groups needs a PolySet environment, got {type(base).__name__}")
    if len(indices) != len(groups):
        raise ValueError(f"score_groups got {len(indices)} problem indices and {len(groups)} groups")
    texts, results, requests = [], [], []
    for index, group in zip(indices, groups):
        base.reset(options={"index": int(index)})
        generations = base._check_action(list(group))
        verified = base.verify(generations)
        texts.append(generations)
        results.append(verified)
        requests.append(JudgeRequest(base.problem.prompt, generations, verified))
    if not requests:
        return []
    before = base.judge.stats.get("failures", 0)
    labels = base.judge.label(requests)
    failures = base.judge.stats.get("failures", 0) - before
    infos = []
    for index, verified, group_labels in zip(indices, results, labels):
        base.reset(options={"index": int(index)})
        infos.append(base.finish(verified, group_labels, judge_failures=failures))
    return infos


def group_advantages(agent: str, infos: Sequence[dict[str, Any]], set_size: int, objective: Any = None,
                     rewards: Any = None, **overrides: Any) -> np.ndarray:
    """Advantages (G, N) of ``agent`` (``agents.advantages.ADVANTAGES``) for groups scored by :func:`score_groups`.

    ``rewards`` (G, N) replaces the env's rewards (e.g. an engine's own reward with extra shaping terms); the strategy
    labels always come from ``infos``. Groups must all have N generations.
    """
    from agents.advantages import compute_advantages

    labels = np.array([info["strategies"] for info in infos], dtype=np.int64)
    if rewards is None:
        rewards = np.array([info["rewards"] for info in infos], dtype=np.float64)
    rewards = np.asarray(rewards, dtype=np.float64).reshape(labels.shape)
    return np.asarray(compute_advantages(agent, rewards, labels, set_size, objective, **overrides))
