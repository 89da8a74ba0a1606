"""Text spaces that mean what they say.

Gymnasium's :class:`~gymnasium.spaces.Text` only admits alphanumerics by default, so a real prompt (spaces,
punctuation, LaTeX, Unicode) is not in it. :class:`UnicodeText` admits any ``str`` up to ``max_length`` characters.
It subclasses ``Text`` so that Gymnasium's vector utilities (``batch_space``, ``concatenate``...) work unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

# What ``sample()`` draws from: printable ASCII (letters, digits, punctuation, space) plus a few non-ASCII characters,
# so that random actions exercise parsers with realistic and awkward text.
SAMPLE_CHARSET = "".join(chr(c) for c in range(32, 127)) + "\n\t×÷−éπ√∞≤≥αβ中"


class UnicodeText(spaces.Text):
    """Any Unicode string of ``min_length`` to ``max_length`` characters.

    ``contains`` accepts every ``str`` in the length range; ``sample`` draws from :data:`SAMPLE_CHARSET`.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | np.random.Generator | None = None):
        super().__init__(max_length=max_length, min_length=min_length, charset=SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )


class GenerationSet(spaces.Sequence):
    """What ``SetEnv.step`` takes: a non-empty list or tuple of generations, each a :class:`UnicodeText` string.

    Any size is accepted: the ``set_size`` strings the objective is meant for, or a whole pool of N > n generations
    (the agent then scores the pool's n-subsets from ``info``). ``sample()`` draws ``set_size`` strings by default.
    """

    def __init__(self, max_length: int, set_size: int, *, seed: int | np.random.Generator | None = None):
        super().__init__(UnicodeText(max_length), stack=False, seed=seed)
        self.set_size = int(set_size)

    def sample(self, mask: Any = None, probability: Any = None) -> tuple[str, ...]:
        if mask is None and probability is None:
            return tuple(self.feature_space.sample() for _ in range(self.set_size))
        return super().sample(mask=mask, probability=probability)

    def contains(self, x: Any) -> bool:
        return isinstance(x, (list, tuple)) and len(x) >= 1 and all(self.feature_space.contains(g) for g in x)

    def __repr__(self) -> str:
        return f"GenerationSet({self.feature_space!r}, set_size={self.set_size})"

    def __eq__(self, other: Any) -> bool:
        return (isinstance(other, GenerationSet) and self.feature_space == other.feature_space
                and self.set_size == other.set_size)
