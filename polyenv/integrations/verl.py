"""Poly-EPO in verl: the ``poly_epo`` advantage estimator and a PolySet reward manager (pip install "polyenv[verl]").

Installing polyenv registers a ``verl.plugins`` entry point, so every verl process (driver, workers, reward loop)
imports this module when it imports verl, which

- registers the advantage estimators ``poly_epo`` (exact marginal set advantages of the env's set objective) and
  ``grpo_div`` (GRPO+DIV) with ``register_adv_est``: ``algorithm.adv_estimator=poly_epo``;
- registers the reward manager ``polyenv`` (``reward.reward_manager.name=polyenv``): it scores each prompt's group of
  responses with the PolySet env's verifier and strategy judge, one judge call per group, and returns the reward and
  the strategy label of each response (``reward_extra_info["strategy"]``, which verl stores in the batch's non-tensor
  data), plus the env's ``set_size`` and objective name;
- lets verl's (legacy, ``trainer.use_v1=False``) trainer hand the batch's non-tensor data to these estimators, as it
  already does for its own GDPO estimator: verl 0.9.1 passes only token-level rewards, the response mask and the
  group ids to custom estimators. The v1 trainer fetches only tensor fields for the advantage step, so it cannot
  carry strategy labels; use ``trainer.use_v1=False``.

    python -m polyenv.integrations.verl --env PolySet-POLARIS-v0 --out data/polaris   # train/test parquet files
    python -m verl.trainer.main_ppo trainer.use_v1=False algorithm.adv_estimator=poly_epo \\
        reward.reward_manager.name=polyenv data.train_files=data/polaris/train.parquet ...

(the README's GPU section has the paper's full override list). Groups are verl's ``uid``: any number of responses
per group, any set size n <= N, any named objective of ``polyenv.objectives``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import threading
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from polyenv.integrations.scoring import score_groups

STRATEGY_KEY = "strategy"
"""Non-tensor batch key of the strategy labels (written by the ``polyenv`` reward manager)."""
SET_SIZE_KEY = "set_size"
OBJECTIVE_KEY = "objective"
ESTIMATORS: dict[str, str] = {"poly_epo": "poly_epo", "grpo_div": "grpo_div"}
"""verl estimator name -> polyenv agent (``agents.advantages.ADVANTAGES``)."""
GROUP_TIMEOUT_S = 600.0
"""The reward manager waits this long for a group's other responses before it reports a split group."""


# ------------------------------------------------------------------------------------------------- advantages


def _option(config: Any, name: str, key: str, default: Any = None) -> Any:
    """``config[name][key]`` (``+algorithm.poly_epo.set_size=4``) when the algorithm config has it, else default."""
    section = None
    if config is not None:
        getter = getattr(config, "get", None)
        section = getter(name, None) if getter is not None else getattr(config, name, None)
    if section is None:
        return default
    getter = getattr(section, "get", None)
    value = getter(key, None) if getter is not None else getattr(section, key, None)
    return default if value is None else value


def _per_sample(non_tensor_batch: Mapping[str, Any] | None, key: str) -> np.ndarray | None:
    if non_tensor_batch is None or key not in non_tensor_batch:
        return None
    return np.asarray(non_tensor_batch[key])


def set_advantage_estimator(agent: str, name: str | None = None):
    """A verl advantage estimator (verl's signature) computing ``agent``'s advantages per ``index`` group.

    Per-response rewards are ``token_level_rewards.sum(-1)`` (as verl's GRPO); the advantage is broadcast over the
    response tokens (``* response_mask``). Strategy labels come from ``non_tensor_batch["strategy"]`` (or
    ``strategies=``); the set size and objective from the algorithm config section ``name``
    (``+algorithm.poly_epo.set_size=4``, ``objective``, ``method``, ``num_sets``, ``lam``...), else from the batch's
    non-tensor ``set_size`` / ``objective`` written by the reward manager.
    """
    name = name or agent
    import torch

    def estimator(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: np.ndarray | None = None,
                  config: Any = None, non_tensor_batch: Mapping[str, Any] | None = None,
                  strategies: Sequence[int] | None = None, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        from agents.advantages import ADVANTAGES, compute_advantages

        scores = token_level_rewards.sum(dim=-1).detach().double().cpu().numpy()  # (bs,)
        bsz = scores.shape[0]
        if index is None:
            raise ValueError(f"{name} needs the group ids (verl's non_tensor_batch['uid'])")
        labels = np.asarray(strategies) if strategies is not None else _per_sample(non_tensor_batch, STRATEGY_KEY)
        parameters = inspect.signature(ADVANTAGES[agent].fn).parameters
        uses_labels = "strategies" in parameters
        if labels is None:
            if uses_labels:
                raise ValueError(f"{name} needs strategy labels in the batch's non-tensor data under "
                                 f"{STRATEGY_KEY!r} (reward.reward_manager.name=polyenv writes them)")
            labels = np.zeros(bsz, dtype=np.int64)
        labels = labels.astype(np.int64)
        set_size = _option(config, name, "set_size")
        if set_size is None:
            sizes = _per_sample(non_tensor_batch, SET_SIZE_KEY)
            set_size = int(sizes[0]) if sizes is not None and sizes.size else None
        if set_size is None and "set_size" in parameters:
            raise ValueError(f"{name} needs the set size: +algorithm.{name}.set_size=N or the polyenv reward manager")
        objective = _option(config, name, "objective")
        if objective is None:
            names = _per_sample(non_tensor_batch, OBJECTIVE_KEY)
            objective = str(names[0]) if names is not None and names.size else None
        overrides = {k: _option(config, name, k) for k in ("method", "num_sets", "seed", "lam", "scale")}
        overrides = {k: v for k, v in overrides.items() if v is not None}
        advantages = np.zeros(bsz)
        groups: dict[Any, list[int]] = {}
        for i, uid in enumerate(index):
            groups.setdefault(uid, []).append(i)
        for members in groups.values():
            rows = np.asarray(members)
            advantages[rows] = compute_advantages(agent, scores[rows], labels[rows], set_size or 1, objective,
                                                  **overrides)
        out = torch.as_tensor(advantages, dtype=token_level_rewards.dtype, device=token_level_rewards.device)
        out = out.unsqueeze(-1) * response_mask
        return out, out

    estimator.__name__ = f"compute_{name}_advantage"
    estimator.__doc__ = f"verl advantage estimator {name!r}: polyenv's {agent} advantages per prompt group."
    return estimator


compute_poly_epo_advantage = set_advantage_estimator("poly_epo")
compute_grpo_div_advantage = set_advantage_estimator("grpo_div")
_FUNCTIONS = {"poly_epo": compute_poly_epo_advantage, "grpo_div": compute_grpo_div_advantage}


def compute_advantage(data: Any, adv_estimator: Any, *args: Any, _verl_compute_advantage: Any = None,
                      **kwargs: Any) -> Any:
    """verl's ``ray_trainer.compute_advantage`` that also hands the non-tensor batch to polyenv's estimators.

    Other estimators go to verl's own function unchanged.
    """
    from verl.trainer.ppo import core_algos

    name = adv_estimator.value if isinstance(adv_estimator, Enum) else adv_estimator
    if name not in ESTIMATORS:
        return _verl_compute_advantage(data, adv_estimator, *args, **kwargs)
    if "response_mask" not in data.batch.keys():  # noqa: SIM118 (a TensorDict refuses `in`)
        from verl.trainer.ppo.ray_trainer import compute_response_mask

        data.batch["response_mask"] = compute_response_mask(data)
    fn = core_algos.get_adv_estimator_fn(name)
    advantages, returns = fn(token_level_rewards=data.batch["token_level_rewards"],
                             response_mask=data.batch["response_mask"], index=data.non_tensor_batch["uid"],
                             config=kwargs.get("config"), non_tensor_batch=data.non_tensor_batch)
    data.batch["advantages"] = advantages
    data.batch["returns"] = returns
    return data


def register() -> None:
    """Register the estimators and the reward manager with verl and route verl's trainer through
    :func:`compute_advantage`; idempotent (verl imports this module through its plugin entry point)."""
    import functools

    from verl.trainer.ppo import core_algos

    for name, fn in _FUNCTIONS.items():
        if core_algos.ADV_ESTIMATOR_REGISTRY.get(name) is not fn:
            core_algos.register_adv_est(name)(fn)
    _register_reward_manager()
    from verl.trainer.ppo import ray_trainer

    current = ray_trainer.compute_advantage
    if getattr(current, "_polyenv", False):
        return
    wrapped = functools.partial(compute_advantage, _verl_compute_advantage=current)
    wrapped._polyenv = True  # type: ignore[attr-defined]
    ray_trainer.compute_advantage = wrapped


# ----------------------------------------------------------------------------------------------------- rewards


def _register_reward_manager() -> None:
    from verl.experimental.reward_loop.reward_manager import registry

    if registry.REWARD_MANAGER.get("polyenv") is not _reward_manager_class():
        registry.register("polyenv")(_reward_manager_class())


_MANAGER: list[type] = []


def _reward_manager_class() -> type:
    if _MANAGER:
        return _MANAGER[0]
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

    class PolySetRewardManager(RewardManagerBase):
        """verl reward manager: a PolySet env's verifier and strategy judge, one judge call per prompt group.

        Responses arrive one at a time (``run_single``); they are held until the group's ``rollout.n`` responses
        (same ``uid``) are in, then the group is scored with :func:`polyenv.integrations.score_groups` and each
        response gets ``{"reward_score": r, "reward_extra_info": {"acc", "strategy", "set_size", "objective"}}``.
        The env comes from the dataset row's ``extra_info`` (``env_id``, ``env_kwargs``, ``index``), as written
        by :func:`write_dataset`. A group must reach one reward worker whole: verl streams each response to a
        random reward worker, so run one (``reward.num_workers=1``; groups are still scored concurrently, in threads,
        each with its own env instance).
        """

        def __init__(self, config: Any, tokenizer: Any, compute_score: Any = None, reward_router_address: Any = None,
                     reward_model_tokenizer: Any = None, group_size: int | None = None) -> None:
            super().__init__(config, tokenizer, compute_score)
            if group_size is None:
                group_size = int(config.actor_rollout_ref.rollout.n)
            self.group_size = int(group_size)
            self._pending: dict[str, list[tuple[str, dict[str, Any], asyncio.Future]]] = {}
            self._free_envs: dict[str, list[Any]] = {}  # groups are scored in threads: one env per group at a time
            self._lock = threading.Lock()

        def _take_env(self, env_id: str, env_kwargs: dict[str, Any]) -> tuple[str, Any]:
            key = json.dumps([env_id, env_kwargs], sort_keys=True)
            with self._lock:
                free = self._free_envs.setdefault(key, [])
                if free:
                    return key, free.pop()
            import gymnasium as gym

            import polyenv  # noqa: F401

            return key, gym.make(env_id, **env_kwargs)

        def _score_group(self, extra: dict[str, Any], texts: list[str]) -> tuple[dict[str, Any], Any]:
            key, env = self._take_env(extra["env_id"], json.loads(extra.get("env_kwargs") or "{}"))
            try:
                (info,) = score_groups(env, [int(extra["index"])], [texts])
                return info, env.unwrapped
            finally:
                with self._lock:
                    self._free_envs[key].append(env)

        async def run_single(self, data: Any) -> dict[str, Any]:
            item = data[-1]
            response_ids = item.batch["responses"]
            length = int(item.batch["attention_mask"][-response_ids.shape[-1]:].sum())
            text = self.tokenizer.decode(response_ids[:length], skip_special_tokens=True)
            extra = dict(item.non_tensor_batch.get("extra_info", None) or {})
            uid = str(item.non_tensor_batch["uid"])
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            pending = self._pending.setdefault(uid, [])
            pending.append((text, extra, future))
            if len(pending) > self.group_size:
                raise RuntimeError(f"group {uid} got more than rollout.n={self.group_size} responses")
            if len(pending) == self.group_size:
                del self._pending[uid]
                await self._score(pending)
            try:
                return await asyncio.wait_for(asyncio.shield(future), GROUP_TIMEOUT_S)
            except asyncio.TimeoutError as err:
                raise RuntimeError(
                    f"group {uid}: only part of its {self.group_size} responses reached this reward worker in "
                    f"{GROUP_TIMEOUT_S:.0f} s; run one reward worker (reward.num_workers=1) so groups are whole") from err

        async def _score(self, members: list[tuple[str, dict[str, Any], asyncio.Future]]) -> None:
            texts = [m[0] for m in members]
            try:
                info, base = await asyncio.get_running_loop().run_in_executor(None, self._score_group, members[0][1],
                                                                              texts)
            except Exception as exc:  # noqa: BLE001 (every response waiting on the group sees the error)
                for *_, future in members:
                    future.set_exception(exc)
                return
            objective = getattr(base.objective, "name", getattr(base.objective, "__name__", "polychromic"))
            for j, (*_, future) in enumerate(members):
                future.set_result({"reward_score": info["rewards"][j], "reward_extra_info": {
                    "acc": float(info["correct"][j]), STRATEGY_KEY: int(info["strategies"][j]),
                    SET_SIZE_KEY: int(base.set_size), OBJECTIVE_KEY: str(objective)}})

    _MANAGER.append(PolySetRewardManager)
    return PolySetRewardManager


def __getattr__(name: str) -> Any:
    if name == "PolySetRewardManager":
        return _reward_manager_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------------- dataset


FALLBACK_TEST_ROWS = 64
"""Rows of the stand-in validation file of an env without a test split."""


def dataset_rows(env_id: str, num_prompts: int | None = None, *, env_kwargs: dict[str, Any] | None = None,
                 split: str = "train", seed: int = 0) -> list[dict[str, Any]]:
    """verl RL dataset rows (``prompt`` chat messages, ``data_source``, ``reward_model``, ``extra_info``) for the
    env's problems; ``extra_info`` names the env, its kwargs and the problem index for the reward manager."""
    from polyenv.integrations.trl import _make_env, problem_indices

    env = _make_env(env_id, env_kwargs, split).unwrapped
    kwargs = json.dumps({"split": split, **(env_kwargs or {})}, sort_keys=True)
    rows = []
    for index in problem_indices(env_id, num_prompts, env_kwargs=env_kwargs, split=split, seed=seed):
        problem = env.get_problem(index)
        rows.append({"data_source": env_id, "prompt": [{"role": "user", "content": problem.prompt}],
                     "ability": "math" if problem.reference is not None else "reasoning",
                     "reward_model": {"style": "rule", "ground_truth": problem.reference or ""},
                     "extra_info": {"env_id": env_id, "env_kwargs": kwargs, "index": int(index),
                                    "problem_id": problem.id}})
    return rows


def write_dataset(env_id: str, out_dir: str | Path, *, num_train: int | None = None, num_test: int | None = None,
                  env_kwargs: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Path]:
    """Write ``train.parquet`` and ``test.parquet`` for ``data.train_files`` / ``data.val_files``. verl loads the
    validation file even when it never validates, so an env without a test split (POLARIS) gets a ``test.parquet``
    of its first ``num_test`` (default :data:`FALLBACK_TEST_ROWS`) train problems, said in the output."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, count in (("train", num_train), ("test", num_test)):
        try:
            rows = dataset_rows(env_id, count, env_kwargs=env_kwargs, split=split, seed=seed)
        except ValueError:
            if split == "test":
                rows = pd.read_parquet(paths["train"]).head(num_test or FALLBACK_TEST_ROWS)
                print(f"{env_id} has no test split: {out / 'test.parquet'} holds its first {len(rows)} train "
                      "problems (verl needs a validation file; the runs never validate)")
                paths[split] = out / f"{split}.parquet"
                rows.to_parquet(paths[split])
                continue
            raise
        paths[split] = out / f"{split}.parquet"
        pd.DataFrame(rows).to_parquet(paths[split])
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a PolySet env's problems as verl parquet datasets")
    parser.add_argument("--env", required=True, help="a PolySet-* id")
    parser.add_argument("--out", required=True, help="output directory (train.parquet, test.parquet)")
    parser.add_argument("--env-kwargs", default="{}", help="JSON kwargs for gymnasium.make (judge, judge_kwargs...)")
    parser.add_argument("--num-train", type=int, default=None, help="train prompts (needed for procedural envs)")
    parser.add_argument("--num-test", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_dataset(args.env, args.out, num_train=args.num_train, num_test=args.num_test,
                          env_kwargs=json.loads(args.env_kwargs), seed=args.seed)
    for split, path in paths.items():
        print(f"{split}: {path}")


def _plugin() -> None:
    """verl's plugin hook: register when verl is importable (verl swallows plugin errors, so this never raises)."""
    try:
        register()
    except ImportError:  # verl without the reward loop or trainer modules: nothing to register
        pass


if __name__ == "__main__":
    main()
