"""The algorithm registry: a plain name -> class map.

Add an algorithm by writing a module with a class that follows ``DraftAlgorithm`` (see
``base.py`` and docs/adding-an-algorithm.md) and adding one line to ``REGISTRY``.
"""

from __future__ import annotations

from specbench.algorithms.base import DraftAlgorithm
from specbench.algorithms.eagle3 import Eagle3
from specbench.algorithms.medusa import Medusa
from specbench.errors import UserError

REGISTRY: dict[str, type[DraftAlgorithm]] = {
    "medusa": Medusa,
    "eagle3": Eagle3,
}


def get_algorithm(name: str) -> type[DraftAlgorithm]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"Unknown algorithm {name!r}. Registered algorithms: "
                        f"{', '.join(sorted(REGISTRY))}. Choose one with algorithm=NAME.") from None


__all__ = ["REGISTRY", "DraftAlgorithm", "get_algorithm"]
