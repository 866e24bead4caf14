"""Modules loaded on first use, so a command that never touches them does not pay for importing them.

``duckdb`` takes a tenth of the time a ``civicshare`` command needs to start, and most commands never
use it. This is the standard library's recipe (:class:`importlib.util.LazyLoader`): the module is
registered at once and executed when one of its attributes is first read. The lazy loader of Python
3.11 is not safe when two threads first read the module at the same moment, so long-running
processes that use it from several threads (``civicshare serve``) call :func:`load_now` at start-up.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """``name``, imported when first used (at once if it is imported already)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def load_now(module: ModuleType) -> None:
    """Finish loading a lazy module now, in this thread."""
    getattr(module, "__name__")  # noqa: B009 - reading any attribute runs the deferred import
