"""polyenv: set-level Gymnasium environments for studying exploration in LLM post-training.

    import gymnasium as gym
    import polyenv  # registers the PolySet-* ids (or use gym.make("polyenv:PolySet-Math-v0"))

    env = gym.make("PolySet-Polynomial-v0")
    prompt, info = env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(generations)   # a set of strings
"""

from polyenv.core import Problem, SetEnv, step_many
from polyenv.judges import JUDGES, JudgeRequest, StrategyJudge, get_judge
from polyenv.objectives import OBJECTIVES, Objective, get_objective
from polyenv.registration import ENVIRONMENTS, OFFLINE_IDS, pprint_registry, register_all
from polyenv.spaces import GenerationSet, UnicodeText
from polyenv.types import DEGENERATE, GenerationResult

__version__ = "0.1.0"

register_all()

__all__ = [
    "DEGENERATE",
    "ENVIRONMENTS",
    "JUDGES",
    "OBJECTIVES",
    "OFFLINE_IDS",
    "GenerationResult",
    "GenerationSet",
    "JudgeRequest",
    "Objective",
    "Problem",
    "SetEnv",
    "StrategyJudge",
    "UnicodeText",
    "get_judge",
    "get_objective",
    "pprint_registry",
    "step_many",
]
