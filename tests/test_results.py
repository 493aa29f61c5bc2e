"""proxymod/results.py on result trees a hostile model could leave (made here directly; the
same attempts through the real sandbox are in tests/test_escapes.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_tree import make_chain

from pacifica.dispatcher_proxymod.proxymod.results import (
    MAX_DEPTH,
    collect_outputs,
    describe_outputs,
    is_reserved,
    move_in,
)
from pacifica.dispatcher_proxymod.settings import Settings


@pytest.fixture
def result(tmp_path: Path) -> Path:
    folder = tmp_path / "result"
    (folder / "outputs").mkdir(parents=True)
    (folder / "outputs" / "real.csv").write_text("year,value\n")
    return folder


def refused(outputs: object) -> dict[str, str]:
    return {entry["path"]: entry["reason"] for entry in outputs.refused}  # type: ignore[attr-defined]


def test_reserved_names_cover_every_file_the_service_writes() -> None:
    for name in ("config_1.ini", "config_12.ini", "stdout.log", "stderr.log", "manifest.json",
                 "report.md", "ro-crate-metadata.json", "logs", "plots"):  # fmt: skip
        assert is_reserved(name), name
    for name in ("config.ini", "config_1.ini.bak", "outputs", "stdout.txt"):
        assert not is_reserved(name), name


def test_a_models_files_of_service_names_are_refused_and_removed(result: Path) -> None:
    for name in ("config_1.ini", "stdout.log", "manifest.json", "report.md"):
        (result / name).write_text("forged")
    (result / "plots").mkdir()
    (result / "plots" / "fake.svg").write_text("<svg/>")
    (result / "stderr.log").symlink_to("/etc/passwd")
    (result / "outputs" / "stdout.log").write_text("a model's own, deeper down: delivered")
    outputs = collect_outputs(result, Settings())
    reasons = refused(outputs)
    assert set(reasons) == {
        "config_1.ini", "stdout.log", "manifest.json", "report.md", "plots", "stderr.log",
    }  # fmt: skip
    assert all("the service's own" in reason for reason in reasons.values())
    assert sorted(os.listdir(result)) == ["outputs"]
    assert [item.path for item in outputs.files] == ["outputs/real.csv", "outputs/stdout.log"]
    assert outputs.failure is None


def test_names_that_are_not_utf8_are_refused_with_a_shown_name(result: Path) -> None:
    raw = os.fsencode(result / "outputs")
    with open(raw + b"/caf\xe9.csv", "w") as handle:
        handle.write("1")
    os.mkdir(raw + b"/dir\xff")
    with open(raw + b"/dir\xff/inner.csv", "w") as handle:
        handle.write("2")
    outputs = collect_outputs(result, Settings())
    assert refused(outputs) == {
        "outputs/caf\\xe9.csv": "the name is not valid UTF-8",
        "outputs/dir\\xff": "the name is not valid UTF-8",
    }
    assert os.listdir(result / "outputs") == ["real.csv"]
    describe_outputs(result, outputs)  # every path JSON-ready


def test_deep_and_long_trees_are_refused_and_removed(result: Path) -> None:
    make_chain(result / "outputs", 1500)
    (result / "outputs" / "long").mkdir()
    make_chain(result / "outputs" / "long", 30, "x" * 200)
    outputs = collect_outputs(result, Settings())
    reasons = refused(outputs)
    deep = "/".join(["outputs", *["d"] * (MAX_DEPTH - 1)])
    assert reasons[deep] == f"the folder is more than {MAX_DEPTH} levels deep"
    assert any(reason == "the path is longer than 1024 bytes" for reason in reasons.values())
    assert [item.path for item in outputs.files] == ["outputs/real.csv"]
    assert not (result / deep).exists()


def test_links_and_hard_links_are_skipped(result: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (result / "outputs" / "soft").symlink_to(secret)
    os.link(secret, result / "outputs" / "hard")
    os.mkfifo(result / "outputs" / "pipe")
    outputs = collect_outputs(result, Settings())
    listed = {entry["path"]: entry for entry in describe_outputs(result, outputs)}
    assert listed["outputs/soft"] == {"path": "outputs/soft", "skipped": "link"}
    assert listed["outputs/hard"] == {"path": "outputs/hard", "skipped": "link"}
    assert listed["outputs/pipe"] == {"path": "outputs/pipe", "skipped": "not a file"}
    real = listed["outputs/real.csv"]
    assert real["size"] == 11 and len(real["sha1"]) == 40


def test_too_many_files_are_refused_before_anything_is_copied(result: Path) -> None:
    for index in range(30):
        (result / "outputs" / f"f{index}.csv").write_text("1")
    outputs = collect_outputs(result, Settings(max_output_files=20))
    assert outputs.failure is not None
    assert "31 files, more than DISPATCHER_MAX_OUTPUT_FILES=20" in outputs.failure
    assert outputs.files == [] and os.listdir(result) == []


def test_sparse_files_count_their_apparent_size(result: Path) -> None:
    for index in range(20):
        with open(result / "outputs" / f"sparse{index}.bin", "wb") as handle:
            handle.truncate(64 * 1024 * 1024)  # 64 MiB of holes, nothing allocated
    outputs = collect_outputs(result, Settings(max_output_mb=100))
    assert outputs.failure is not None
    assert "1280.0 MB" in outputs.failure and "DISPATCHER_MAX_OUTPUT_MB=100" in outputs.failure
    assert os.listdir(result) == []


def test_move_in_replaces_whatever_is_there(tmp_path: Path) -> None:
    service, result = tmp_path / "service", tmp_path / "result"
    service.mkdir()
    result.mkdir()
    (service / "stdout.log").write_text("what the models printed")
    (result / "stdout.log").mkdir()
    move_in(service / "stdout.log", result / "stdout.log")
    move_in(service / "stderr.log", result / "stderr.log")  # nothing printed: an empty log
    assert (result / "stdout.log").read_text() == "what the models printed"
    assert (result / "stderr.log").read_text() == ""
