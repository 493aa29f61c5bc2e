"""Regenerate examples/event.json from the files in examples/data.

The event is a CloudEvents 0.1 ``org.pacifica.metadata.ingest`` event, shaped as Pacifica
Notifications delivers it, describing an upload of the two input CSVs and the three example models
with the proxymod key/values of three configurations. Sizes and sha1 hashsums are computed from the
files, so run this after editing one::

    python examples/make_event.py           # rewrite examples/event.json
    python examples/make_event.py --check   # exit 1 if examples/event.json is out of date
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parent
DATA_DIR = EXAMPLES_DIR / "data"
EVENT_FILE = EXAMPLES_DIR / "event.json"

TRANSACTION_ID = 1101
FIRST_FILE_ID = 1102
# Fixed times keep the event identical however the files were checked out.
EVENT_TIME = "2026-11-27T12:00:05"
FILE_TIME = "2026-11-27T12:00:00"
# The submitter, project and instrument that pass policy in the Pacifica test data.
SUBMITTER, PROJECT, INSTRUMENT = 10, "1234a", 54

CONFIGS_COUNT = 3
CONFIG_VALUES = {
    "PROJECT.runtime": "0",
    "PROJECT.failure": "0",
    "INPUTS.in_dir": "inputs",
    "INPUTS.in_file_one": "in_file_one.csv",
    "INPUTS.in_file_two": "in_file_two.csv",
    "OUTPUTS.out_dir": "outputs",
}
# (subdir, name, mimetype) of every file of the upload, in event order.
FILES = [
    ("inputs", "in_file_one.csv", "text/csv"),
    ("inputs", "in_file_two.csv", "text/csv"),
    ("models", "loose_coupling.py", "text/x-python"),
    ("models", "tight_coupling.py", "text/x-python"),
    ("models", "tight_coupling_twoway.py", "text/x-python"),
]


def key_values() -> list[tuple[str, str]]:
    """The proxymod TransactionKeyValue pairs, in event order."""
    pairs = [
        ("proxymod.task", "advance"),
        ("proxymod.version", "v0.0.1"),
        ("proxymod.configs_count", str(CONFIGS_COUNT)),
    ]
    for number in range(1, CONFIGS_COUNT + 1):
        pairs += [
            (f"proxymod.config_{number}.{key}", value) for key, value in CONFIG_VALUES.items()
        ]
    return pairs


def file_entry(file_id: int, subdir: str, name: str, mimetype: str) -> dict[str, Any]:
    """The ``Files`` entry of ``data_dir/subdir/name``, with its real size and sha1."""
    content = (DATA_DIR / subdir / name).read_bytes()
    return {
        "_id": file_id,
        "ctime": FILE_TIME,
        "destinationTable": "Files",
        "hashsum": hashlib.sha1(content, usedforsecurity=False).hexdigest(),
        "hashtype": "sha1",
        "mimetype": mimetype,
        "mtime": FILE_TIME,
        "name": name,
        "size": len(content),
        "subdir": subdir,
    }


def build_event() -> dict[str, Any]:
    """The example event, as a JSON-ready dict."""
    data: list[dict[str, Any]] = [
        {"destinationTable": "Transactions.submitter", "value": SUBMITTER},
        {"destinationTable": "Transactions.project", "value": PROJECT},
        {"destinationTable": "Transactions.instrument", "value": INSTRUMENT},
    ]
    data += [
        {"destinationTable": "TransactionKeyValue", "key": key, "value": value}
        for key, value in key_values()
    ]
    data += [
        file_entry(FIRST_FILE_ID + index, subdir, name, mimetype)
        for index, (subdir, name, mimetype) in enumerate(FILES)
    ]
    data.append({"destinationTable": "Transactions._id", "value": TRANSACTION_ID})
    return {
        "cloudEventsVersion": "0.1",
        "eventType": "org.pacifica.metadata.ingest",
        "source": f"http://metadata.pacifica.org/transactions?_id={TRANSACTION_ID}",
        "eventID": f"metadata.ingest.{TRANSACTION_ID}",
        "eventTime": EVENT_TIME,
        "extensions": {},
        "contentType": "application/json",
        "data": data,
    }


def render_event() -> str:
    """The text of event.json: indented JSON with a final newline."""
    return json.dumps(build_event(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write event.json, or with ``--check`` report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="only check that event.json is current"
    )
    args = parser.parse_args(argv)
    text = render_event()
    if args.check:
        current = EVENT_FILE.read_text(encoding="utf-8") if EVENT_FILE.exists() else ""
        if current != text:
            print(f"{EVENT_FILE} is out of date: run python {__file__}", file=sys.stderr)
            return 1
        return 0
    EVENT_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {EVENT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
