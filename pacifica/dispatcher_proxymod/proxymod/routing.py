"""Which events the proxymod handler takes: two jsonpath2 expressions and their explanation.

Both live in ``routes/`` (package data), in jsonpath2, the language Pacifica Notifications
matches subscriptions with, and are matched against :meth:`Event.to_legacy`, the document
Notifications matches:

* ``proxymod.jsonpath``, the **strict** route: what an event must hold to run. Only an event
  that matches it goes to the handler.
* ``proxymod-broad.jsonpath``, the **broad** one, the default subscription: every ingest
  event from an accepted source with any ``proxymod.`` key, except the dispatcher's own
  result uploads (they carry ``proxymod.result``). An event that matches it but not the
  strict route asked for proxymod and got something wrong: it is recorded as rejected with
  every problem (see :mod:`.proxymod.validate`), so the uploader gets an answer instead of silence.

**Accepted sources.** ``Settings.accepted_sources`` (``DISPATCHER_ACCEPTED_SOURCES``,
comma separated) lists the event sources we act on. Each entry is read as:

* ending in ``=`` or ``/``: a **prefix**; a source matches when it starts with the entry
  (``http://metadata.pacifica.org/transactions?_id=`` matches ``...?_id=1008``);
* ending in ``*``: a prefix without the ``*`` (``https://meta.example/txn*``);
  a lone ``*`` accepts every source;
* anything else: the **exact** source (``/pacifica/metadata/ingest``).

An empty tuple accepts every source. Entries must not contain ``"``, ``\\`` or control
characters (jsonpath2 string literals cannot hold them); such settings raise
:class:`~.errors.SettingsError`. The shipped file carries the condition for the default
sources (:data:`SHIPPED_SOURCES`); :func:`subscription_expression` swaps in the
condition for other settings, and :func:`match` also checks the source in Python.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from ..errors import SettingsError
from ..events import INGEST_EVENT_TYPE, Event
from ..problems import Problem, nearest, shown
from ..settings import Settings
from .config import SCHEMA

if TYPE_CHECKING:
    from jsonpath2.path import Path

LOGGER = logging.getLogger(__name__)

ROUTE_NAME: Final = "proxymod"
#: The package whose data the routes are.
ROUTES_PACKAGE: Final = "pacifica.dispatcher_proxymod"
EXPRESSION_RESOURCE: Final = "routes/proxymod.jsonpath"
BROAD_RESOURCE: Final = "routes/proxymod-broad.jsonpath"
#: Every key of a proxymod request starts with this.
PROXYMOD_KEY_PREFIX: Final = "proxymod."
#: The key of the dispatcher's own result uploads, which the broad expression leaves out.
RESULT_KEY: Final = "proxymod.result"

#: The sources whose condition is written in the shipped expression file.
SHIPPED_SOURCES: Final = (
    "/pacifica/metadata/ingest",
    "http://metadata.pacifica.org/transactions?_id=",
)

#: What the expression requires besides files: key -> required value (None: any value).
REQUIRED_KEY_VALUES: Final[Mapping[str, str | None]] = {
    "proxymod.task": "advance",
    "proxymod.version": "v0.0.1",
    "proxymod.configs_count": None,
    "proxymod.config_1.PROJECT.runtime": None,
    "proxymod.config_1.PROJECT.failure": None,
    "proxymod.config_1.INPUTS.in_dir": None,
    "proxymod.config_1.INPUTS.in_file_one": None,
    "proxymod.config_1.INPUTS.in_file_two": None,
    "proxymod.config_1.OUTPUTS.out_dir": None,
}
INPUT_MIMETYPE: Final = "text/csv"
MODEL_MIMETYPE: Final = "text/x-python"
MODEL_SUBDIRS: Final = ("models", "models/")
_IN_DIR_KEY: Final = "proxymod.config_1.INPUTS.in_dir"
_INPUT_FILE_KEYS: Final = (
    "proxymod.config_1.INPUTS.in_file_one",
    "proxymod.config_1.INPUTS.in_file_two",
)
_SOURCE_SETTING: Final = "DISPATCHER_ACCEPTED_SOURCES"
#: The reason when the Python checks find nothing but jsonpath2 still does not match.
NO_MATCH: Final = "the event does not match the proxymod expression"
_ANY_SOURCE: Final = "*"


@dataclass(frozen=True)
class Route:
    """A named jsonpath2 expression; an event that matches it goes to that handler."""

    name: str
    expression: str


def _resource_text(resource: str) -> str:
    return resources.files(ROUTES_PACKAGE).joinpath(resource).read_text(encoding="utf-8")


def load_proxymod_route() -> Route:
    """The shipped (strict) proxymod route, its expression exactly as the package data holds it."""
    return Route(ROUTE_NAME, _resource_text(EXPRESSION_RESOURCE))


def subscription_expression(settings: Settings, *, strict: bool = True) -> str:
    """The strict (routing) or broad expression, for ``settings.accepted_sources``.

    For the default sources this is the shipped file, unchanged.
    """
    resource = EXPRESSION_RESOURCE if strict else BROAD_RESOURCE
    return _expression_for(tuple(settings.accepted_sources), resource)


def broad_expression(settings: Settings) -> str:
    """The broad expression, the default subscription (see the module doc)."""
    return subscription_expression(settings, strict=False)


def asks_for_proxymod(event: Event, settings: Settings) -> bool:
    """Whether ``event`` matches the broad expression: an upload that asks proxymod for a run.

    Python checks that mirror the expression (the tests hold them to jsonpath2's answer).
    """
    if event.type != INGEST_EVENT_TYPE or not event.id or not isinstance(event.data, list):
        return False
    if not source_accepted(event.source, settings.accepted_sources):
        return False
    keys = [
        entry.get("key")
        for entry in event.data
        if isinstance(entry, dict) and entry.get("destinationTable") == "TransactionKeyValue"
    ]
    asked = any(isinstance(key, str) and key.startswith(PROXYMOD_KEY_PREFIX) for key in keys)
    return asked and RESULT_KEY not in keys


def match(event: Event, settings: Settings) -> Route | None:
    """The route ``event`` takes, or None. Never raises on odd events.

    Raises :class:`SettingsError` only when ``accepted_sources`` cannot be expressed.
    """
    expression = subscription_expression(settings)
    try:
        # The Python checks mirror the expression, are cheap, and stop hostile shapes
        # (data as an object, nested lists) that jsonpath2 would walk into.
        if next(_reasons(event, settings.accepted_sources), None) is not None:
            return None
        matched = _matches(expression, event.to_legacy())
    except Exception:  # jsonpath2 on hostile data: a mismatch, not a crash
        LOGGER.warning("matching event %r raised; treated as no match", event.id, exc_info=True)
        return None
    return Route(ROUTE_NAME, expression) if matched else None


def quick_mismatch(event: Event, settings: Settings) -> list[str]:
    """Why ``event`` cannot match, by the Python checks alone (no jsonpath2); empty if it may.

    About two hundred times cheaper than :func:`match`, for the web process: it records an
    event these checks refuse as 422 at once and queues the rest; the worker then runs
    :func:`match` in full. The property tests hold both to the same answer.
    """
    try:
        return [str(problem) for _, problem in _reasons(event, settings.accepted_sources)]
    except Exception:  # explaining must never turn a 422 into a crash
        LOGGER.warning("checking event %r raised; treated as no match", event.id, exc_info=True)
        return [NO_MATCH]


def source_accepted(source: str, accepted: tuple[str, ...]) -> bool:
    """Whether ``source`` is accepted by the entries ``accepted`` (see the module doc)."""
    if not accepted:
        return True
    for entry in accepted:
        prefix = _prefix_of(entry)
        if prefix is None:
            if source == entry:
                return True
        elif source.startswith(prefix):
            return True
    return False


def explain_mismatch(event: Event, settings: Settings) -> list[str]:
    """Human reasons why ``event`` does not match the proxymod route (empty if it does)."""
    reasons = [str(problem) for _, problem in mismatch_problems(event, settings)]
    if not reasons and match(event, settings) is None:
        reasons.append(NO_MATCH)
    return reasons


# --------------------------------------------------------------------------- expression text


def _prefix_of(entry: str) -> str | None:
    """The prefix an accepted-source entry stands for, or None for an exact source."""
    if entry.endswith("*"):
        return entry[:-1]
    if entry.endswith(("=", "/")):
        return entry
    return None


def _literal(text: str) -> str:
    """``text`` as a jsonpath2 string literal (which has no escapes: refuse what needs one)."""
    if any(char in '"\\' or ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise SettingsError(
            _SOURCE_SETTING, f"{text!r} holds a quote, backslash or control character"
        )
    return f'"{text}"'


def _source_condition(sources: tuple[str, ...]) -> str:
    """The jsonpath2 text that accepts ``sources``, joined to the rest by a leading ``and``."""
    if not sources or _ANY_SOURCE in sources:
        return ""
    conditions = []
    for entry in sources:
        prefix = _prefix_of(entry)
        if prefix is None:
            conditions.append(f'$["source"] = {_literal(entry)}')
        elif prefix:
            conditions.append(f'$["source"][substring(0, {len(prefix)})] = {_literal(prefix)}')
        else:
            return ""
    if len(conditions) == 1:
        return f"\n  and {conditions[0]}"
    joined = "\n    or ".join(conditions)
    return f"\n  and (\n    {joined}\n  )"


@functools.lru_cache(maxsize=32)
def _expression_for(sources: tuple[str, ...], resource: str = EXPRESSION_RESOURCE) -> str:
    text = _resource_text(resource)
    shipped = _source_condition(SHIPPED_SOURCES)
    if sources == SHIPPED_SOURCES:
        return text
    if text.count(shipped) != 1:  # guarded by a test; keeps a stale file from misrouting
        raise RuntimeError(f"{resource} lacks the shipped source condition")
    return text.replace(shipped, _source_condition(sources))


def prepare(settings: Settings) -> None:
    """Parse the expression now (it is cached), e.g. before a worker forks its pool."""
    _compiled(subscription_expression(settings))


@functools.lru_cache(maxsize=32)
def _compiled(expression: str) -> Path:
    # imported here: jsonpath2 and its ANTLR runtime (about 2 MiB) are the worker's; the web
    # process runs only the Python checks (quick_mismatch, asks_for_proxymod)
    from jsonpath2.path import Path

    return Path.parse_str(expression)


def _matches(expression: str, document: dict[str, Any]) -> bool:
    return any(True for _ in _compiled(expression).match(document))


# --------------------------------------------------------------------------- explanations


#: The kinds of requirement a :class:`Problem` of :func:`mismatch_problems` is about.
EVENT, KEY, FILE = "event", "key", "file"


def mismatch_problems(event: Event, settings: Settings) -> list[tuple[str, Problem]]:
    """What ``event`` misses of the route's requirements, each with its kind (EVENT, KEY, FILE).

    The kind lets :mod:`.proxymod.validate` drop what the configs' own checks say better.
    Never raises on odd events.
    """
    try:
        return list(_reasons(event, settings.accepted_sources))
    except Exception:  # explaining must never turn a 422 into a crash
        LOGGER.warning("explaining event %r raised", event.id, exc_info=True)
        return []


def _reasons(event: Event, accepted: tuple[str, ...]) -> Iterator[tuple[str, Problem]]:
    """Each requirement of the expression that ``event`` misses, in words."""
    if event.type != INGEST_EVENT_TYPE:
        yield EVENT, Problem("eventType", f"is {event.type}", f"expected {INGEST_EVENT_TYPE}")
    if not source_accepted(event.source, accepted):
        yield (
            EVENT,
            Problem(
                "source", f"{event.source} is not accepted", f"accepted: {', '.join(accepted)}"
            ),
        )
    if not event.id:
        yield EVENT, Problem("eventID", "missing")
    data = event.data
    if not isinstance(data, list):
        yield EVENT, Problem("data", "is not a list of Pacifica metadata entries")
        return
    entries = [entry for entry in data if isinstance(entry, dict)]
    values = _key_values(entries)
    given = [key for key in values if key.startswith(PROXYMOD_KEY_PREFIX)]
    for key, wanted in REQUIRED_KEY_VALUES.items():
        found = values.get(key, [])
        expected = f"expected {wanted}" if wanted is not None else None
        if not found:
            typo = nearest(key, [name for name in given if not _known_key(name)])
            note = None if typo is None else f"{shown(typo)} is given: is it misspelt?"
            yield KEY, Problem(key, "missing TransactionKeyValue", expected, note=note)
        elif wanted is not None and wanted not in found:
            yield KEY, Problem(key, f"is {_shown(found)}", expected)
    files = [entry for entry in entries if entry.get("destinationTable") == "Files"]
    in_dirs = values.get(_IN_DIR_KEY, [])
    for key in _INPUT_FILE_KEYS:
        names = values.get(key, [])
        if names and in_dirs and not _has_input(files, names, in_dirs):
            yield (
                FILE,
                Problem(
                    key,
                    f"no {INPUT_MIMETYPE} File named {_shown(names)} in subdir {_shown(in_dirs)}",
                ),
            )
    if not any(
        entry.get("mimetype") == MODEL_MIMETYPE and entry.get("subdir") in MODEL_SUBDIRS
        for entry in files
    ):
        yield FILE, Problem("models/", f"no {MODEL_MIMETYPE} File in subdir models/")


def _known_key(key: str) -> bool:
    """Whether ``key`` is a valid proxymod key (so not a misspelling of another)."""
    if key in REQUIRED_KEY_VALUES:
        return True
    parts = key.split(".")
    return (
        len(parts) == 4
        and parts[1].startswith("config_")
        and parts[1][len("config_") :].isdigit()
        and parts[3] in SCHEMA.get(parts[2], ())
    )


def _key_values(entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every TransactionKeyValue key -> all the values given for it, as sent."""
    values: dict[str, list[Any]] = {}
    for entry in entries:
        if entry.get("destinationTable") != "TransactionKeyValue" or "value" not in entry:
            continue
        key = entry.get("key")
        if isinstance(key, str):
            values.setdefault(key, []).append(entry["value"])
    return values


def _same_dir(subdir: Any, in_dir: Any) -> bool:
    """``subdir`` and ``in_dir`` name one folder, give or take one trailing ``/``."""
    if not isinstance(subdir, str) or not isinstance(in_dir, str):
        return bool(subdir == in_dir)
    return (
        subdir == in_dir
        or (in_dir.endswith("/") and subdir == in_dir[:-1])
        or (subdir.endswith("/") and subdir[:-1] == in_dir)
    )


def _has_input(files: list[dict[str, Any]], names: list[Any], in_dirs: list[Any]) -> bool:
    return any(
        entry.get("mimetype") == INPUT_MIMETYPE
        and entry.get("name") in names
        and any(_same_dir(entry.get("subdir"), in_dir) for in_dir in in_dirs)
        for entry in files
    )


def _shown(values: list[Any]) -> str:
    """Values for a reason: one shown alone, several as a list; long text shortened."""
    texts = [
        json.dumps(value)[:80] if not isinstance(value, str) else value[:80] for value in values
    ]
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
