"""What never reaches a log: request bodies and credentials, at any level.

:class:`QuietFilter` sits on the one log handler (logconfig.py). It drops the records that
carry what a client sent or what the database stores: peewee's DEBUG line of every query holds
its parameters, which are the event (the body) of ``/receive``. And it replaces every configured
secret (the service's Basic password and bearer token, the Pacifica password) by ``***`` in
whatever record still mentions one, e.g. an exception message. CherryPy's own header logging
on errors is off in the application config (web/app.py), and the HTTP server never echoes or
logs a request (server.py).
"""

from __future__ import annotations

import logging

from .settings import Settings

#: Loggers whose records below INFO carry query parameters or message bodies.
LOUD_LOGGERS = ("peewee",)
MASK = "***"


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """The configured secrets, longest first (so one that contains another is masked whole)."""
    found = {settings.auth_password, settings.auth_token, settings.pacifica.auth_password}
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


class QuietFilter(logging.Filter):
    """Drops the DEBUG records of :data:`LOUD_LOGGERS`; masks configured secrets."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO and record.name.split(".")[0] in LOUD_LOGGERS:
            return False
        if self.secrets:
            message = record.getMessage()
            if any(secret in message for secret in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, MASK)
                record.msg, record.args = message, None
            if record.exc_info and record.exc_info[1] is not None:
                text = str(record.exc_info[1])
                if any(secret in text for secret in self.secrets):
                    record.exc_info = None
                    record.exc_text = None
                    record.msg = f"{record.msg} (exception text withheld: it held a secret)"
        return True
