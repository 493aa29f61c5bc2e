"""proxymod: a stand-in scientific model for testing how models couple.

Our own implementation of the IMMM-SFA proxymod library (whose last release does not run on
Python 3.11+), behaving as it does wherever it works, with the same public names:
``proxymod.model.Prox``, ``proxymod.config_reader.ReadConfig``, ``proxymod.logger``. Model files
use it as::

    from proxymod.model import Prox

It imports only the standard library and its own modules, so it can run on any ``sys.path``.
"""

# The original's package namespace: its submodules, and what its model module exports.
from . import config_reader, logger, model  # noqa: F401
from .model import Prox, ReadConfig, math, time  # noqa: F401

# As the original: ``from proxymod import *`` gives the module ``model``.
__all__ = ["model"]
