"""CloudEvents in, one normalised :class:`Event` out; Pacifica ``data[]`` -> :class:`Upload`.

Three wire shapes are accepted by :func:`parse_http`:

* CloudEvents **0.1** as plain JSON (what Pacifica Notifications delivers): our own
  normaliser maps the 0.1 names to the 1.0 names and lifts the ``extensions`` bag into
  top-level extension attributes.
* CloudEvents **1.0** and **0.3** in structured mode (``application/cloudevents+json``)
  or binary mode (``ce-*`` headers), read with the official ``cloudevents`` SDK
  (``cloudevents.core.bindings.http``).
* A 1.0/0.3 event sent as plain ``application/json`` with ``specversion`` in the body.

Everything else raises :class:`~.errors.InvalidEvent`, which lists every problem found.

``http`` picks the reader a request needs, ``legacy`` reads 0.1, ``sdk`` reads 1.0/0.3 (our
checks, then the SDK), ``event`` is the normalised :class:`Event`, ``jsontext`` the strict JSON
loading every reader shares, ``checks`` the attribute checks; ``upload`` reads Pacifica's
``data[]`` (:func:`parse_upload`, :func:`transaction_id_of`).
"""

from .event import Event
from .http import parse_http
from .jsontext import MAX_JSON_DEPTH
from .legacy import LEGACY_VERSION
from .sdk import SDK_VERSIONS
from .upload import INGEST_EVENT_TYPE, FileEntry, Upload, parse_upload, transaction_id_of

__all__ = [
    "INGEST_EVENT_TYPE",
    "LEGACY_VERSION",
    "MAX_JSON_DEPTH",
    "SDK_VERSIONS",
    "Event",
    "FileEntry",
    "Upload",
    "parse_http",
    "parse_upload",
    "transaction_id_of",
]
