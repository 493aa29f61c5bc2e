"""Tests of transfer.bundle: the Ingest bundle (data tree plus metadata.txt) of a result tree."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from transfer_files import make_upload, result_tree, sha1

from pacifica.dispatcher_proxymod.errors import TransferError
from pacifica.dispatcher_proxymod.transfer.base import list_result_files
from pacifica.dispatcher_proxymod.transfer.bundle import bundle_metadata, write_bundle


def test_bundle_holds_data_tree_and_metadata(tmp_path: Path) -> None:
    files = result_tree(tmp_path / "results", tmp_path / "outside")
    metadata = bundle_metadata(make_upload(), {"Transactions._id": "1", "proxymod.result": "ok"})
    bundle = io.BytesIO()
    write_bundle(metadata, list_result_files(tmp_path / "results"), bundle)

    bundle.seek(0)
    with tarfile.open(fileobj=bundle, mode="r:") as archive:
        names = archive.getnames()
        contents = {
            name: archive.extractfile(name).read()  # type: ignore[union-attr]
            for name in names
            if name != "metadata.txt"
        }
        described = json.loads(archive.extractfile("metadata.txt").read())  # type: ignore[union-attr]

    assert names[-1] == "metadata.txt"
    assert contents == {f"data/{relative}": data for relative, data in files.items()}
    assert described[:5] == [
        {"destinationTable": "Transactions.submitter", "value": 10},
        {"destinationTable": "Transactions.project", "value": "1234a"},
        {"destinationTable": "Transactions.instrument", "value": 54},
        {"destinationTable": "TransactionKeyValue", "key": "Transactions._id", "value": "1"},
        {"destinationTable": "TransactionKeyValue", "key": "proxymod.result", "value": "ok"},
    ]
    entries = {(d["subdir"], d["name"]): d for d in described[5:]}
    assert set(entries) == {
        ("", "config_1.ini"),
        ("logs", "ünïcode é.log"),
        ("outputs", "binary.bin"),
        ("outputs/model_1_outputs", "output1.csv"),
    }
    for (subdir, name), described_file in entries.items():
        data = files[f"{subdir}/{name}" if subdir else name]
        assert described_file["destinationTable"] == "Files"
        assert described_file["hashtype"] == "sha1"
        assert described_file["hashsum"] == sha1(data)
        assert described_file["size"] == len(data)


@pytest.mark.parametrize("missing", ["submitter", "project", "instrument"])
def test_bundle_metadata_needs_the_transaction_fields(missing: str) -> None:
    fields: dict[str, Any] = {"submitter": 10, "project": "1234a", "instrument": 54}
    fields[missing] = None
    with pytest.raises(TransferError, match=f"no Transactions.{missing}") as caught:
        bundle_metadata(make_upload(**fields), {})
    assert caught.value.transient is False


def test_bundle_metadata_refuses_an_empty_value() -> None:
    with pytest.raises(TransferError, match=r"'proxymod\.note'"):
        bundle_metadata(make_upload(), {"proxymod.note": ""})
