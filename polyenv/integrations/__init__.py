"""Use polyenv's set environments and exact set advantages from the RL engines people already run.

- :mod:`polyenv.integrations.trl`: TRL's ``GRPOTrainer`` (accelerate / DeepSpeed / FSDP, vLLM colocated or server).
- :mod:`polyenv.integrations.verl`: verl's PPO trainer (Ray, FSDP / Megatron, vLLM / SGLang rollouts).
- :mod:`polyenv.integrations.engines`: the paper's configuration expressed in each engine's own config.
- :mod:`polyenv.integrations.generation`: evaluation samplers at scale (in-process vLLM, an OpenAI-compatible server).

Each engine is an optional dependency (``pip install "polyenv[trl]"`` / ``"polyenv[verl]"``), imported lazily.
:func:`score_groups` is the one scoring path both use: it returns what ``env.step`` returns for each prompt's group
of generations, with one batched judge call for all groups.
"""

from polyenv.integrations.scoring import group_advantages, score_groups

__all__ = ["group_advantages", "score_groups"]
