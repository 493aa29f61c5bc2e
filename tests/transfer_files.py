"""Files and uploads the transfer tests share: checksums, written files, a hostile result tree."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pacifica.dispatcher_proxymod.events import Upload


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324


def make_upload(
    transaction_id: int | None = 1,
    submitter: int | str | None = 10,
    project: int | str | None = "1234a",
    instrument: int | str | None = 54,
) -> Upload:
    return Upload(transaction_id, submitter, project, instrument, {}, ())


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def result_tree(root: Path, outside: Path) -> dict[str, bytes]:
    """A result tree with text, binary, nested and non-ASCII files, plus planted symlinks."""
    files = {
        "config_1.ini": b"[run]\nyears = 2\n",
        "outputs/model_1_outputs/output1.csv": b"t,v\n0,1.5\n1,2.5\n",
        "outputs/binary.bin": os.urandom(3 * 1024 * 1024 + 17),
        "logs/ünïcode é.log": "journal ✓\n".encode(),
    }
    for relative, data in files.items():
        write(root / relative, data)
    secret = write(outside / "secret.txt", b"do not ship")
    (root / "planted.txt").symlink_to(secret)
    (root / "outputs" / "planted_dir").symlink_to(outside)
    return files
