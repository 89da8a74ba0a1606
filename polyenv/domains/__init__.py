"""Domains of polyenv. Each module holds one family of registered environments (see ``polyenv.registration``):
``polynomial``, ``multiplication``, ``countdown`` (synthetic, exact strategy oracles, warm-start demonstrations; shared
machinery in ``synthetic``) and ``math`` (benchmarks graded with math-verify). Modules are imported lazily by
``gym.make``; importing this package stays cheap."""

from polyenv.domains.synthetic import Demonstration

__all__ = ["Demonstration"]
