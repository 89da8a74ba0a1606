"""GRPO, GRPO+DIV and Poly-EPO on a PolySet env with TRL's ``GRPOTrainer`` (pip install "polyenv[trl]").

    from trl import GRPOConfig
    from polyenv.integrations.trl import SetGRPOTrainer, env_dataset

    env_id = "PolySet-Polynomial-v0"
    trainer = SetGRPOTrainer(
        model="HuggingFaceTB/SmolLM2-135M-Instruct", agent="poly_epo", env_id=env_id,
        train_dataset=env_dataset(env_id, num_prompts=1024),
        args=GRPOConfig(output_dir="runs/trl", num_generations=8, loss_type="dr_grpo", scale_rewards="none",
                        epsilon=0.2, epsilon_high=0.28, beta=0.0, max_grad_norm=0.3, learning_rate=1e-6),
    )
    trainer.train()

- :func:`env_dataset`: a ``datasets.Dataset`` of the env's prompts with a ``problem_index`` column.
- :class:`EnvReward`: a TRL reward function, the env verifier's per-generation reward (works with a stock
  ``GRPOTrainer`` too: that is plain GRPO on the env).
- :class:`SetGRPOTrainer`: a ``GRPOTrainer`` whose advantages are ``agents.advantages`` for ``agent``, computed
  after TRL gathers the rewards of all processes, so a prompt's group is never split: the completions of every
  process are gathered, the main process runs the env's verifier and strategy judge on each whole group (one judge
  call per prompt, all prompts batched), and every process keeps its slice of the advantages. Everything else
  (generation with ``generate`` or vLLM, weight sync, sharding, the clipped loss) is TRL's.

The rewards in the advantage are TRL's (the weighted sum of ``reward_funcs``, by default :class:`EnvReward`); the
strategy labels come from the env's judge. Only the training batch is replaced; evaluation batches keep TRL's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

try:
    from accelerate.utils import broadcast_object_list, gather_object
    from trl import GRPOTrainer
except ImportError as err:  # pragma: no cover - CI installs the extra
    raise ImportError('polyenv.integrations.trl needs TRL: pip install "polyenv[trl]"') from err

from polyenv.integrations.scoring import group_advantages, score_groups
from polyenv.validation import check_int

SET_AGENTS: tuple[str, ...] = ("grpo_div", "poly_epo", "pass_at_k")
"""Agents whose advantage needs strategy labels or sets (the trainer runs the env's judge for them)."""


def _make_env(env_id: str, env_kwargs: dict[str, Any] | None, split: str = "train") -> Any:
    import gymnasium as gym

    import polyenv  # noqa: F401  (registers the PolySet ids)

    return gym.make(env_id, **{"split": split, **(env_kwargs or {})})


def _completion_text(completion: Any) -> str:
    """TRL passes a completion as a string, or (conversational) as a list of messages: the assistant's text."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
    raise TypeError(f"unexpected completion type {type(completion).__name__}")


def problem_indices(env_id: str, num_prompts: int | None = None, *, env_kwargs: dict[str, Any] | None = None,
                    split: str = "train", seed: int = 0) -> list[int]:
    """The problem indices of a dataset: all of a finite split (the first ``num_prompts``), or ``num_prompts`` draws
    from a procedural (unbounded) split, deterministic in ``seed``."""
    from polyenv.core import UNBOUNDED_INDEX

    env = _make_env(env_id, env_kwargs, split).unwrapped
    total = env.num_problems
    if total is None:
        if num_prompts is None:
            raise ValueError(f"{env_id} has an unbounded {split!r} split: pass num_prompts")
        return [int(i) for i in np.random.default_rng(seed).choice(UNBOUNDED_INDEX, size=num_prompts, replace=False)]
    count = total if num_prompts is None else min(int(num_prompts), total)
    return list(range(count))


def env_dataset(env_id: str, num_prompts: int | None = None, *, env_kwargs: dict[str, Any] | None = None,
                split: str = "train", seed: int = 0, conversational: bool = True,
                system_prompt: str | None = None) -> Any:
    """A ``datasets.Dataset`` with ``prompt`` (chat messages, or the raw text when ``conversational=False``),
    ``problem_index`` and ``problem_id`` columns, for ``GRPOTrainer(train_dataset=...)``."""
    from datasets import Dataset

    env = _make_env(env_id, env_kwargs, split).unwrapped
    rows = []
    for index in problem_indices(env_id, num_prompts, env_kwargs=env_kwargs, split=split, seed=seed):
        problem = env.get_problem(index)
        if conversational:
            messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
            prompt: Any = [*messages, {"role": "user", "content": problem.prompt}]
        else:
            prompt = problem.prompt if system_prompt is None else f"{system_prompt}\n\n{problem.prompt}"
        rows.append({"prompt": prompt, "problem_index": int(index), "problem_id": problem.id})
    return Dataset.from_list(rows)


def filter_overlong_prompts(dataset: Any, tokenizer: Any, max_prompt_length: int) -> tuple[Any, int]:
    """Drop the rows of an :func:`env_dataset` whose prompt is longer than ``max_prompt_length`` tokens after the
    chat template (what verl's ``data.filter_overlong_prompts`` does). TRL 1.16 has no ``max_prompt_length``: it
    neither truncates nor drops prompts, and vLLM then shortens the completion budget of a long prompt to the rest of
    ``vllm_max_model_length`` (or rejects the prompt), so the length limit is applied here. Returns the kept dataset
    and the number of rows dropped; a dataset with nothing left is a ValueError."""
    check_int("max_prompt_length", max_prompt_length, low=1)

    def length(prompt: Any) -> int:
        if isinstance(prompt, str):
            return len(tokenizer(prompt)["input_ids"])
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        return len(ids["input_ids"] if isinstance(ids, Mapping) else ids)

    keep = [i for i, prompt in enumerate(dataset["prompt"]) if length(prompt) <= max_prompt_length]
    if not keep:
        raise ValueError(f"every one of the {len(dataset)} prompts is longer than max_prompt_length="
                         f"{max_prompt_length} tokens after the chat template")
    return dataset.select(keep), len(dataset) - len(keep)


class EnvReward:
    """TRL reward function: the env verifier's reward of each completion (``info["rewards"]`` of ``env.step``).

    Needs the dataset's ``problem_index`` column (see :func:`env_dataset`). No judge runs here: a per-completion
    reward does not need strategy labels.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None, split: str = "train") -> None:
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.split = split
        self.__name__ = f"{env_id}/reward"  # TRL names the logged reward column after it
        self._env: Any = None

    @property
    def env(self) -> Any:
        if self._env is None:
            self._env = _make_env(self.env_id, self.env_kwargs, self.split).unwrapped
        return self._env

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], problem_index: Sequence[int] | None = None,
                 **kwargs: Any) -> list[float]:
        if problem_index is None:
            raise ValueError("EnvReward needs the dataset's 'problem_index' column (build it with env_dataset)")
        env, rewards = self.env, []
        for index, completion in zip(problem_index, completions):
            if env._index != int(index):
                env.reset(options={"index": int(index)})
            (result,) = env.verify([_completion_text(completion)])
            rewards.append(float(result.reward))
        return rewards


class SetGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with polyenv's advantages for ``agent``: see the module docstring.

    Args (on top of ``GRPOTrainer``'s):
        agent: ``grpo``, ``grpo_div``, ``poly_epo`` or ``pass_at_k`` (``agents.advantages.ADVANTAGES``).
        env_id / env_kwargs: the PolySet env whose verifier and judge score the groups.
        set_size: n; ``None`` = the env's ``set_size``.
        advantage_kwargs: extra arguments of the advantage (``{"lam": 0.2}`` for ``grpo_div``...).
    ``reward_funcs`` defaults to :class:`EnvReward` of the env.
    """

    def __init__(self, *args: Any, agent: str = "poly_epo", env_id: str, env_kwargs: dict[str, Any] | None = None,
                 set_size: int | None = None, advantage_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        from agents.advantages import ADVANTAGES

        if agent not in ADVANTAGES:
            raise ValueError(f"unknown agent {agent!r}; choose one of {sorted(ADVANTAGES)}")
        if kwargs.get("reward_funcs") is None and (len(args) < 2 or args[1] is None):
            kwargs["reward_funcs"] = EnvReward(env_id, env_kwargs)
        super().__init__(*args, **kwargs)
        if self.args.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError("SetGRPOTrainer needs multi_objective_aggregation='sum_then_normalize', got "
                             f"{self.args.multi_objective_aggregation!r}")
        if agent in SET_AGENTS and self.args.scale_rewards != "none":
            raise ValueError(f"{agent} advantages are never std-scaled: set GRPOConfig(scale_rewards='none'), got "
                             f"scale_rewards={self.args.scale_rewards!r}")
        self.agent = agent
        self.set_env = _make_env(env_id, env_kwargs).unwrapped
        self.set_size = int(set_size if set_size is not None else self.set_env.set_size)
        if not 1 <= self.set_size <= self.num_generations:
            raise ValueError(f"set_size={self.set_size} must be in [1, num_generations={self.num_generations}]")
        self.advantage_kwargs = dict(advantage_kwargs or {})
        if agent in ("grpo", "grpo_div"):
            self.advantage_kwargs.setdefault("scale", self.args.scale_rewards)
        self._set_batch: tuple[list[int], list[str], Any] | None = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        indices = [int(x["problem_index"]) for x in inputs] if "problem_index" in inputs[0] else None
        self._set_batch = (indices, [_completion_text(c) for c in completions], rewards_per_func)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        self._set_batch = None
        output = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return output
        if self._set_batch is None:  # pragma: no cover - a TRL change that skips _calculate_rewards
            raise RuntimeError("SetGRPOTrainer: TRL did not compute rewards through _calculate_rewards")
        indices, texts, rewards_per_func = self._set_batch
        # TRL's rewards of all processes (gathered): the weighted sum of the reward functions; unscorable -> 0.
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        rewards = (rewards_per_func * weights).nansum(dim=1)
        n_gen = self.num_generations
        groups = rewards.numel() // n_gen
        labels = None
        if self.agent in SET_AGENTS:
            labels = self._strategy_labels(indices, texts, groups, n_gen)
        adv = self._advantages(rewards.double().cpu().numpy().reshape(groups, n_gen), labels)
        advantages = torch_from(adv.reshape(-1), rewards)
        local = len(texts)
        start = self.accelerator.process_index * local
        output["advantages"] = advantages[start:start + local].to(output["advantages"].dtype)
        logged = self._logs["advantages"]
        for _ in range(min(len(logged), advantages.numel())):
            logged.pop()
        logged.extend(advantages.tolist())
        return output

    def _strategy_labels(self, indices, texts, groups: int, n_gen: int) -> np.ndarray:
        """Strategy labels (G, N) of the gathered batch: the main process runs the verifier and the judge on whole
        groups (one judge request per prompt), then broadcasts them."""
        if indices is None:
            raise ValueError(f"agent {self.agent!r} needs the dataset's 'problem_index' column (see env_dataset)")
        all_indices = gather_object(indices)
        all_texts = gather_object(texts)
        payload: list[Any] = [None]
        if self.accelerator.is_main_process:
            if len(all_indices) != groups * n_gen:
                raise RuntimeError(f"gathered {len(all_indices)} completions for {groups} groups of {n_gen}")
            group_indices = []
            for g in range(groups):
                members = set(all_indices[g * n_gen:(g + 1) * n_gen])
                if len(members) != 1:
                    raise RuntimeError(f"group {g} mixes problems {sorted(members)}: TRL's sampler must repeat "
                                       f"each prompt num_generations={n_gen} times in a row")
                group_indices.append(all_indices[g * n_gen])
            infos = score_groups(self.set_env, group_indices,
                                 [all_texts[g * n_gen:(g + 1) * n_gen] for g in range(groups)])
            payload = [[info["strategies"] for info in infos]]
            distinct = [len({s for s in info["strategies"] if s >= 0}) for info in infos]
            payload.append(float(np.mean(distinct)))
            payload.append(infos[0]["judge_failures"] if infos else 0)
        else:
            payload = [None, None, None]
        payload = broadcast_object_list(payload, from_process=0)
        self._metrics["train"]["strategies/distinct_per_group"].append(payload[1])
        self._metrics["train"]["strategies/judge_failures"].append(float(payload[2]))
        return np.asarray(payload[0], dtype=np.int64)

    def _advantages(self, rewards: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        from agents.advantages import compute_advantages

        if labels is None:  # grpo: no labels needed
            labels = np.zeros(rewards.shape, dtype=np.int64)
        return np.asarray(compute_advantages(self.agent, rewards, labels, self.set_size,
                                             self.set_env.objective, **self.advantage_kwargs))



def torch_from(array: np.ndarray, like: Any) -> Any:
    """``array`` as a float32 tensor on ``like``'s device."""
    import torch

    return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=like.device)


__all__ = ["SET_AGENTS", "EnvReward", "SetGRPOTrainer", "env_dataset", "group_advantages", "problem_indices",
           "score_groups"]
