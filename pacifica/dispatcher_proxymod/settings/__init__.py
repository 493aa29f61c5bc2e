"""Every setting of the dispatcher, read once, in one place.

Values come from the environment, then from the INI file named by ``DISPATCHER_CONFIG``
(section ``[dispatcher]``, the same names in lower case), then from the defaults below.
Nothing here is read at import time: call :func:`load_settings`.

Pacifica endpoints use pacifica-cli's own names (``UPLOAD_URL``, ``DOWNLOAD_URL``, ...) and
its config file, so one configuration serves both tools; see :class:`PacificaSettings`.
"""

from .environment import environment_for
from .load import load_settings
from .shapes import (
    AUTH_MODES,
    DEFAULT_QUEUE,
    KEEP_WORK_MODES,
    LOG_FORMATS,
    LOG_LEVELS,
    SANDBOX_MODES,
    TRANSFER_KINDS,
    HttpSettings,
    ModelLimits,
    PacificaSettings,
    Settings,
)
from .source import CONFIG_FILE_VARIABLE

__all__ = [
    "AUTH_MODES",
    "CONFIG_FILE_VARIABLE",
    "DEFAULT_QUEUE",
    "KEEP_WORK_MODES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "SANDBOX_MODES",
    "TRANSFER_KINDS",
    "HttpSettings",
    "ModelLimits",
    "PacificaSettings",
    "Settings",
    "environment_for",
    "load_settings",
]
