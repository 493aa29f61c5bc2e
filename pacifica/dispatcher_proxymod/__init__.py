"""Pacifica dispatcher for proxymod: receive events, run models in a sandbox, upload results.

Importing this package connects to nothing; see ``settings`` for configuration.
"""

__version__ = "1.0.0"
