"""Public names of a package, imported from their defining modules on first use (PEP 562).

A package lists ``{module: [names]}`` and gets ``__getattr__`` and ``__all__``, so that
``from facecast.recon import MorphableModel`` works while ``import facecast.recon`` imports nothing heavy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, modules: dict[str, list[str]]) -> tuple[Callable[[str], object], list[str]]:
    """``(__getattr__, __all__)`` for ``package``; ``modules`` maps each defining module to its public names."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        if name in home:
            return getattr(importlib.import_module(home[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    __getattr__.home = home  # name -> defining module, for tests and tools
    return __getattr__, sorted(home)
