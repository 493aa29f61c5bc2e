"""The code that runs on the model side of the sandbox, never inside the dispatcher.

``runtime/proxymod/`` is our own implementation of the proxymod library that users' model files
import as ``from proxymod.model import Prox``. It is deliberately *not* importable as a top-level
``proxymod`` from the dispatcher's environment, so it never clashes with a real proxymod a user may
have installed. The sandbox puts :data:`RUNTIME_DIR` first on a model process's ``sys.path``; only
there does ``import proxymod`` find it.

For that reason everything under ``runtime/proxymod/`` imports the standard library and its own
modules (relatively) only: never ``pacifica.*`` or a third-party package.
"""

from __future__ import annotations

from pathlib import Path

#: The directory to put first on a model process's ``sys.path`` so ``import proxymod`` finds ours.
RUNTIME_DIR: Path = Path(__file__).resolve().parent

__all__ = ["RUNTIME_DIR"]
