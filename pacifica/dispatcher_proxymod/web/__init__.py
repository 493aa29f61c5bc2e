"""The HTTP API (CherryPy): receive events, show tasks. No business logic lives here.

``app`` builds the tree and its config; ``receive``, ``tasks`` and ``service`` hold the
resources; ``auth`` the optional credentials check; ``errors`` the JSON answers.
"""

from .app import Api, LazyApplication, app_config, create_app
from .errors import json_error_page

__all__ = ["Api", "LazyApplication", "app_config", "create_app", "json_error_page"]
