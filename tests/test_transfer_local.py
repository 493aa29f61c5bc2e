"""Tests of the transfer interface's shared helpers and the local transfer, on real files."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import pytest
from test_tree import make_chain
from transfer_files import sha1, write

from pacifica.dispatcher_proxymod.errors import ChecksumMismatch, SettingsError, TransferError
from pacifica.dispatcher_proxymod.events import Event, FileEntry, Upload
from pacifica.dispatcher_proxymod.paths import PathError
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.transfer import Delivery, LocalTransfer, make_transfer
from pacifica.dispatcher_proxymod.transfer.base import (
    MAX_RESULT_DEPTH,
    copy_verified,
    list_result_files,
    transaction_metadata,
)
from pacifica.dispatcher_proxymod.transfer.local import DELIVERY_SUFFIX
from pacifica.dispatcher_proxymod.transfer.pacifica import PacificaTransfer
from pacifica.dispatcher_proxymod.tree import remove_tree

EVENT = Event(specversion="1.0", id="metadata.ingest.7", source="test", type="test")


def entry(name: str, subdir: str, data: bytes, file_id: int | None = 1) -> FileEntry:
    return FileEntry(
        name=name,
        subdir=subdir,
        mimetype="text/csv",
        hashtype="sha1",
        hashsum=sha1(data),
        size=len(data),
        file_id=file_id,
        mtime=None,
        ctime=None,
    )


def make_upload(files: tuple[FileEntry, ...] = ()) -> Upload:
    return Upload(
        transaction_id=7,
        submitter=10,
        project="1234a",
        instrument=54,
        key_values={"proxymod.task": "run"},
        files=files,
    )


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    names = ("data", "work", "output", "results")
    made = {name: tmp_path / name for name in names}
    for path in made.values():
        path.mkdir()
    return made


@pytest.fixture
def transfer(dirs: dict[str, Path]) -> LocalTransfer:
    return LocalTransfer(dirs["data"], dirs["output"])


# ------------------------------------------------------------------ download


def test_download_copies_files_into_their_subdirs(
    dirs: dict[str, Path], transfer: LocalTransfer
) -> None:
    inputs = {("inputs/", "a.csv"): b"x,y\n1,2\n", ("", "top.txt"): b"top", ("m/n", "é.py"): b"#"}
    files = []
    for (subdir, name), data in inputs.items():
        write(dirs["data"] / subdir / name, data)
        files.append(entry(name, subdir, data))

    got = transfer.download(EVENT, make_upload(tuple(files)), files, dirs["work"])

    assert set(got) == set(files)
    for item in files:
        expected = (dirs["work"] / item.subdir / item.name).resolve()
        assert got[item] == expected
        assert expected.read_bytes() == inputs[(item.subdir, item.name)]
    leftovers = [p.name for p in dirs["work"].rglob(".partial-*")]
    assert leftovers == []


def test_download_of_nothing_returns_nothing(
    dirs: dict[str, Path], transfer: LocalTransfer
) -> None:
    assert transfer.download(EVENT, make_upload(), [], dirs["work"]) == {}


def test_missing_input_names_the_file(dirs: dict[str, Path], transfer: LocalTransfer) -> None:
    missing = entry("absent.csv", "inputs", b"whatever")
    with pytest.raises(TransferError, match=r"inputs/absent\.csv not found") as caught:
        transfer.download(EVENT, make_upload(), [missing], dirs["work"])
    assert caught.value.transient is False


def test_checksum_mismatch_is_detected_and_leaves_nothing(
    dirs: dict[str, Path], transfer: LocalTransfer
) -> None:
    write(dirs["data"] / "inputs" / "a.csv", b"the real content")
    wrong = entry("a.csv", "inputs", b"what the event promised")
    with pytest.raises(ChecksumMismatch) as caught:
        transfer.download(EVENT, make_upload(), [wrong], dirs["work"])
    assert caught.value.expected == wrong.hashsum
    assert caught.value.actual == sha1(b"the real content")
    assert caught.value.path == "inputs/a.csv"
    assert [p for p in dirs["work"].rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("subdir", "name"),
    [("../x", "a.csv"), ("", "/etc/passwd"), ("/etc", "passwd"), ("a/../../b", "c"), ("", "..")],
)
def test_hostile_names_raise_path_error_before_writing(
    dirs: dict[str, Path], transfer: LocalTransfer, subdir: str, name: str
) -> None:
    hostile = entry(name, subdir, b"x")
    with pytest.raises(PathError):
        transfer.download(EVENT, make_upload(), [hostile], dirs["work"])
    assert list(dirs["work"].iterdir()) == []


def test_symlink_in_data_dir_pointing_outside_is_refused(
    tmp_path: Path, dirs: dict[str, Path], transfer: LocalTransfer
) -> None:
    secret = write(tmp_path / "secret.txt", b"secret")
    (dirs["data"] / "inputs").mkdir()
    (dirs["data"] / "inputs" / "a.csv").symlink_to(secret)
    (dirs["data"] / "linkdir").symlink_to(tmp_path)
    for item in (entry("a.csv", "inputs", b"secret"), entry("secret.txt", "linkdir", b"secret")):
        with pytest.raises(TransferError, match="leaves the data directory"):
            transfer.download(EVENT, make_upload(), [item], dirs["work"])
    assert [p for p in dirs["work"].rglob("*") if p.is_file()] == []


def test_symlink_inside_data_dir_is_allowed(dirs: dict[str, Path], transfer: LocalTransfer) -> None:
    write(dirs["data"] / "real" / "a.csv", b"1,2\n")
    (dirs["data"] / "alias").symlink_to(dirs["data"] / "real")
    item = entry("a.csv", "alias", b"1,2\n")
    got = transfer.download(EVENT, make_upload(), [item], dirs["work"])
    assert got[item].read_bytes() == b"1,2\n"


def test_download_needs_a_data_dir(dirs: dict[str, Path]) -> None:
    with pytest.raises(TransferError, match="DISPATCHER_DATA_DIR"):
        LocalTransfer(None, dirs["output"]).download(
            EVENT, make_upload(), [entry("a", "", b"")], dirs["work"]
        )


def test_unsupported_hash_type_is_refused(dirs: dict[str, Path], transfer: LocalTransfer) -> None:
    write(dirs["data"] / "a.csv", b"1")
    odd = FileEntry("a.csv", "", "text/csv", "crc99", "00", 1, 1, None, None)
    with pytest.raises(TransferError, match="unsupported hash type 'crc99'"):
        transfer.download(EVENT, make_upload(), [odd], dirs["work"])


@pytest.mark.parametrize("hashtype", ["shake_128", "shake128", "SHAKE_256", "", "sha-1"])
def test_hash_types_needing_a_length_or_unknown_are_refused_not_a_type_error(
    dirs: dict[str, Path], transfer: LocalTransfer, hashtype: str
) -> None:
    write(dirs["data"] / "a.csv", b"1")
    odd = FileEntry("a.csv", "", "text/csv", hashtype, "00", 1, 1, None, None)
    with pytest.raises(TransferError, match=r"unsupported hash type .*supported: .*sha1"):
        transfer.download(EVENT, make_upload(), [odd], dirs["work"])
    assert not (dirs["work"] / "a.csv").exists()


def test_an_md5_checked_file_is_accepted(dirs: dict[str, Path], transfer: LocalTransfer) -> None:
    write(dirs["data"] / "a.csv", b"1,2\n")
    md5 = FileEntry("a.csv", "", "text/csv", "MD5", hashlib.md5(b"1,2\n").hexdigest(),  # noqa: S324
                    4, 1, None, None)  # fmt: skip
    got = transfer.download(EVENT, make_upload(), [md5], dirs["work"])
    assert got[md5].read_bytes() == b"1,2\n"


def test_large_file_is_streamed_not_loaded(dirs: dict[str, Path], transfer: LocalTransfer) -> None:
    size = 64 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha1()  # noqa: S324
    source = dirs["data"] / "big" / "blob.bin"
    source.parent.mkdir()
    with source.open("wb") as out:
        for _ in range(size // len(block)):
            out.write(block)
            digest.update(block)
    big = FileEntry("blob.bin", "big", "application/octet-stream", "sha1", digest.hexdigest(),
                    size, 1, None, None)  # fmt: skip

    tracemalloc.start()
    try:
        got = transfer.download(EVENT, make_upload(), [big], dirs["work"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert got[big].stat().st_size == size
    assert peak < 8 * 1024 * 1024  # Python allocations stay near one chunk, far below 64 MB


def test_copy_verified_replaces_only_after_a_match(tmp_path: Path) -> None:
    target = write(tmp_path / "out" / "a.txt", b"old")
    with (tmp_path / "src").open("wb+") as source:
        source.write(b"new")
        source.seek(0)
        with pytest.raises(ChecksumMismatch):
            copy_verified(source, target, entry("a.txt", "", b"not new"))
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


# ------------------------------------------------------------------ upload


def test_upload_copies_tree_and_describes_it(
    dirs: dict[str, Path], transfer: LocalTransfer
) -> None:
    results = dirs["results"]
    write(results / "config_1.ini", b"[a]\nb = 1\n")
    write(results / "outputs" / "m1" / "out.csv", b"t,v\n0,1\n")
    key_values = {"Transactions._id": "7", "proxymod.result": "done"}

    delivery = transfer.upload(make_upload(), results, key_values)

    assert isinstance(delivery, Delivery)
    assert delivery.transaction_id is None and delivery.job_id is None
    target = Path(delivery.location)
    assert target.is_absolute() and target.parent == dirs["output"]
    assert (target / "config_1.ini").read_bytes() == b"[a]\nb = 1\n"
    assert (target / "outputs" / "m1" / "out.csv").read_bytes() == b"t,v\n0,1\n"
    description = json.loads((target.parent / (target.name + DELIVERY_SUFFIX)).read_text())
    assert description["location"] == str(target)
    metadata = description["metadata"]
    assert {"destinationTable": "Transactions.submitter", "value": 10} in metadata
    assert {"destinationTable": "Transactions.project", "value": "1234a"} in metadata
    assert {"destinationTable": "Transactions.instrument", "value": 54} in metadata
    assert {
        "destinationTable": "TransactionKeyValue",
        "key": "Transactions._id",
        "value": "7",
    } in metadata
    files = {(f["subdir"], f["name"]): f for f in metadata if f["destinationTable"] == "Files"}
    assert set(files) == {("", "config_1.ini"), ("outputs/m1", "out.csv")}
    assert files[("outputs/m1", "out.csv")]["hashsum"] == sha1(b"t,v\n0,1\n")
    assert files[("outputs/m1", "out.csv")]["size"] == 8


def test_upload_never_overwrites_an_earlier_result(
    dirs: dict[str, Path], transfer: LocalTransfer
) -> None:
    write(dirs["results"] / "a.txt", b"first")
    first = transfer.upload(make_upload(), dirs["results"], {})
    write(dirs["results"] / "a.txt", b"second")
    second = transfer.upload(make_upload(), dirs["results"], {})
    assert first.location != second.location
    assert (Path(first.location) / "a.txt").read_bytes() == b"first"
    assert (Path(second.location) / "a.txt").read_bytes() == b"second"


def test_upload_skips_symlinks(
    tmp_path: Path, dirs: dict[str, Path], transfer: LocalTransfer
) -> None:
    secret = write(tmp_path / "secret" / "key.txt", b"secret")
    results = dirs["results"]
    write(results / "real.txt", b"real")
    (results / "planted.txt").symlink_to(secret)
    (results / "planted_dir").symlink_to(secret.parent)

    delivery = transfer.upload(make_upload(), results, {})

    target = Path(delivery.location)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["real.txt"]
    assert [r.relative_path.as_posix() for r in list_result_files(results)] == ["real.txt"]


def test_upload_of_a_hostile_tree_delivers_what_is_safe_and_never_recurses(
    dirs: dict[str, Path], transfer: LocalTransfer
) -> None:
    results = dirs["results"]
    write(results / "real.txt", b"real")
    make_chain(results, 1500)  # a RecursionError for a recursive walk
    os.mkdir(os.fsencode(results) + b"/bad\xff")
    write(Path(os.fsdecode(os.fsencode(results) + b"/bad\xff/inner.txt")), b"x")

    delivery = transfer.upload(make_upload(), results, {})

    target = Path(delivery.location)
    listed = [r.relative_path.as_posix() for r in list_result_files(results)]
    assert "real.txt" in listed and not any("bad" in name for name in listed)
    assert max(len(name.split("/")) for name in listed) <= MAX_RESULT_DEPTH
    assert (target / "real.txt").read_bytes() == b"real"
    remove_tree(results)


def test_upload_needs_an_output_dir(dirs: dict[str, Path]) -> None:
    with pytest.raises(TransferError, match="DISPATCHER_OUTPUT_DIR"):
        LocalTransfer(dirs["data"], None).upload(make_upload(), dirs["results"], {})


def test_upload_of_a_missing_result_dir_fails(tmp_path: Path, transfer: LocalTransfer) -> None:
    with pytest.raises(TransferError, match="does not exist"):
        transfer.upload(make_upload(), tmp_path / "nowhere", {})


def test_transaction_metadata_copies_the_input_upload() -> None:
    entries = transaction_metadata(make_upload(), {"Transactions._id": "7"})
    assert entries == [
        {"destinationTable": "Transactions.submitter", "value": 10},
        {"destinationTable": "Transactions.project", "value": "1234a"},
        {"destinationTable": "Transactions.instrument", "value": 54},
        {"destinationTable": "TransactionKeyValue", "key": "Transactions._id", "value": "7"},
    ]


# ------------------------------------------------------------------ make_transfer


def test_make_transfer_picks_the_implementation(tmp_path: Path) -> None:
    settings = Settings(transfer="local", data_dir=tmp_path / "d", output_dir=tmp_path / "o")
    local = make_transfer(settings)
    assert isinstance(local, LocalTransfer) and local.kind == "local"
    assert local.data_dir == tmp_path / "d"
    remote = make_transfer(settings, "pacifica")
    assert isinstance(remote, PacificaTransfer) and remote.kind == "pacifica"
    with pytest.raises(SettingsError, match="DISPATCHER_TRANSFER"):
        make_transfer(settings, "ftp")
