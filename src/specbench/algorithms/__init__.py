"""The algorithm registry: a plain name -> class map.

Add an algorithm by writing a module (or subpackage) with a class that follows
``DraftAlgorithm`` (see ``base.py`` and docs/adding-an-algorithm.md) and adding its line to
``ALGORITHMS``: the registry name, then the module and class of the draft and of its settings.
``CONFIGS`` (name -> settings dataclass) is imported eagerly and needs no torch, so composing a
config stays light; ``REGISTRY`` (name -> draft class) imports the models on first use.
"""

from __future__ import annotations

import importlib

from specbench.errors import UserError

#: name -> ("module:DraftClass", "module:ConfigClass")
ALGORITHMS: dict[str, tuple[str, str]] = {
    "medusa": ("specbench.algorithms.medusa.model:Medusa",
               "specbench.algorithms.medusa.config:MedusaConfig"),
    "eagle3": ("specbench.algorithms.eagle3.model:Eagle3",
               "specbench.algorithms.eagle3.config:Eagle3Config"),
    "hydra": ("specbench.algorithms.hydra.model:Hydra",
              "specbench.algorithms.hydra.config:HydraConfig"),
    "dflash": ("specbench.algorithms.dflash.model:DFlash",
               "specbench.algorithms.dflash.config:DFlashConfig"),
}


def _load(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


CONFIGS: dict[str, type] = {name: _load(cfg) for name, (_, cfg) in ALGORITHMS.items()}


def __getattr__(name: str):
    if name == "REGISTRY":  # built once, on first use: importing the models imports torch
        registry = {key: _load(cls) for key, (cls, _) in ALGORITHMS.items()}
        globals()["REGISTRY"] = registry
        return registry
    if name == "DraftAlgorithm":
        from specbench.algorithms.base import DraftAlgorithm

        return DraftAlgorithm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_algorithm(name: str):
    registry = __getattr__("REGISTRY") if "REGISTRY" not in globals() else globals()["REGISTRY"]
    try:
        return registry[name]
    except KeyError:
        raise UserError(f"Unknown algorithm {name!r}. Registered algorithms: "
                        f"{', '.join(sorted(registry))}. Choose one with algorithm=NAME.") from None


__all__ = ["ALGORITHMS", "CONFIGS", "REGISTRY", "DraftAlgorithm", "get_algorithm"]
