"""proxymod: a stand-in scientific model for testing how models couple.

Our own implementation of the IMMM-SFA proxymod library (whose last release does not run on
Python 3.11+), written from its documented behaviour. Model files use it as::

    from proxymod.model import Prox

It imports only the standard library and its own modules, so it can run on any ``sys.path``.
"""

from __future__ import annotations

from .config import ConfigError, MissingPathError, ProxConfig, read_config
from .model import Prox

__all__ = ["ConfigError", "MissingPathError", "Prox", "ProxConfig", "read_config"]
