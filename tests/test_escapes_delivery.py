"""Hostile models against the delivery: each model really runs in the real sandbox (both
isolations) and leaves what a hostile author would; each task must end with a clear outcome
(delivered faithfully or refused with a reason), never an exception from our code.

The mechanism is in ``proxymod/results.py``, ``tree.py`` and ``transfer/base.py``."""

# ruff: noqa: F811 - pytest passes the fixtures imported from test_escapes by name
from __future__ import annotations

import json
import os

from test_escapes import Hostile, _run_outcomes, hostile, isolation  # noqa: F401

from pacifica.dispatcher_proxymod.proxymod.results import MAX_DEPTH
from pacifica.dispatcher_proxymod.tree import walk


def test_a_models_files_named_like_the_services_are_refused_and_the_services_win(
    hostile: Hostile,
) -> None:
    hostile.model(
        "forger",
        """
        import os

        def forger(config):
            for name in ("config_1.ini", "stdout.log", "stderr.log", "manifest.json",
                         "report.md", "ro-crate-metadata.json"):
                with open(os.path.join("result", name), "w") as handle:
                    handle.write("forged by the model")
            for folder in ("logs", "plots"):
                os.makedirs(os.path.join("result", folder), exist_ok=True)
                with open(os.path.join("result", folder, "x.txt"), "w") as handle:
                    handle.write("forged by the model")
            os.makedirs("result/outputs", exist_ok=True)
            with open("result/outputs/manifest.json", "w") as handle:
                handle.write("{}")  # its own, in its own folder: delivered as it is
            print("the model's real stdout")
        """,
    )
    result = hostile.run("forger")
    assert _run_outcomes(result) == [("forger", "ok")], result.failure
    files = hostile.delivered_files(result)
    assert all(b"forged by the model" not in content for content in files.values())
    assert files["config_1.ini"].startswith(b"[PROJECT]")
    assert b"the model's real stdout" in files["stdout.log"]
    assert files["outputs/manifest.json"] == b"{}"
    manifest = json.loads(files["manifest.json"])
    assert manifest["task"] == hostile.task_id
    refused = {entry["path"]: entry["reason"] for entry in manifest["refused"]}
    assert set(refused) == {
        "config_1.ini", "stdout.log", "stderr.log", "manifest.json", "report.md",
        "ro-crate-metadata.json", "logs", "plots",
    }  # fmt: skip
    assert all("the service's own" in reason for reason in refused.values())


def test_a_model_cannot_tamper_with_the_log_of_the_model_before_it(hostile: Hostile) -> None:
    hostile.model("first", "def first(config):\n    print('first model was here')\n")
    hostile.model(
        "eraser",
        """
        import glob, os

        def eraser(config):
            for path in glob.glob("**/*.log", recursive=True) + glob.glob("../**/*.log"):
                with open(path, "w") as handle:
                    handle.write("erased")
        """,
    )
    result = hostile.run("first", "eraser")
    assert _run_outcomes(result) == [("first", "ok"), ("eraser", "ok")], result.failure
    stdout = hostile.delivered_files(result)["stdout.log"]
    if hostile.settings.sandbox == "bwrap":  # the logs are out of the sandbox's sight
        assert b"first model was here" in stdout and b"erased" not in stdout


def test_names_that_are_not_utf8_are_refused_and_the_rest_delivered(hostile: Hostile) -> None:
    hostile.model(
        "latin1",
        """
        import os

        def latin1(config):
            os.makedirs(b"result/outputs/dir\\xff", exist_ok=True)
            for name in (b"result/outputs/caf\\xe9.csv", b"result/outputs/dir\\xff/x.csv"):
                with open(name, "w") as handle:
                    handle.write("1")
            with open("result/outputs/fine.csv", "w") as handle:
                handle.write("year,value\\n")
        """,
    )
    result = hostile.run("latin1")
    assert _run_outcomes(result) == [("latin1", "ok")], result.failure
    files = hostile.delivered_files(result)
    assert files["outputs/fine.csv"] == b"year,value\n"
    manifest = json.loads(files["manifest.json"])
    assert {entry["path"]: entry["reason"] for entry in manifest["refused"]} == {
        "outputs/caf\\xe9.csv": "the name is not valid UTF-8",
        "outputs/dir\\xff": "the name is not valid UTF-8",
    }


def test_a_1500_deep_tree_ends_clearly_and_the_work_dir_is_handed_back(hostile: Hostile) -> None:
    hostile.model(
        "digger",
        """
        import os

        def digger(config):
            os.makedirs("result/outputs", exist_ok=True)
            os.chdir("result/outputs")
            for _ in range(1500):
                os.mkdir("d")
                os.chdir("d")
            open("bottom.csv", "w").close()
            os.chdir(os.environ["HOME"])
            os.makedirs("result/outputs/long", exist_ok=True)
            os.chdir("result/outputs/long")
            for _ in range(300):  # 60 kB of path, far past PATH_MAX
                os.mkdir("x" * 200)
                os.chdir("x" * 200)
            open("bottom.csv", "w").close()
            os.chdir(os.environ["HOME"])
            with open("result/outputs/shallow.csv", "w") as handle:
                handle.write("year,value\\n")
        """,
    )
    result = hostile.run("digger")
    assert _run_outcomes(result) == [("digger", "ok")], result.failure
    files = hostile.delivered_files(result)
    assert files["outputs/shallow.csv"] == b"year,value\n"
    assert not [name for name in files if name.endswith("bottom.csv")]
    reasons = {entry["reason"] for entry in json.loads(files["manifest.json"])["refused"]}
    assert reasons <= {
        f"the folder is more than {MAX_DEPTH} levels deep",
        "the path is longer than 1024 bytes",
    }
    assert reasons, "the deep folders are listed as refused"
    owners = {entry.info.st_uid for entry in walk(hostile.work)}
    assert owners == {os.geteuid()}, "every entry of the kept work dir is the service's again"


def test_too_many_output_files_are_refused_before_anything_is_copied(hostile: Hostile) -> None:
    hostile.settings = hostile.settings.with_changes(max_output_files=100)
    hostile.model(
        "flood",
        """
        import os

        def flood(config):
            os.makedirs("result/outputs", exist_ok=True)
            for index in range(500):
                open("result/outputs/f%04d.csv" % index, "w").close()
            print("flooded")
        """,
    )
    result = hostile.run("flood")
    assert result.failure is not None
    assert "500 files, more than DISPATCHER_MAX_OUTPUT_FILES=100" in result.failure
    files = hostile.delivered_files(result)
    assert not [name for name in files if name.startswith("outputs/")]
    assert b"flooded" in files["stdout.log"]
    assert json.loads(files["manifest.json"])["status"] == "failed"


def test_sparse_files_cannot_make_the_worker_write_gigabytes(hostile: Hostile) -> None:
    hostile.settings = hostile.settings.with_changes(max_output_mb=64)
    hostile.model(
        "sparse",
        """
        import os

        def sparse(config):
            os.makedirs("result/outputs", exist_ok=True)
            for index in range(20):  # 20 x 15 MiB of holes: 300 MiB for a copy to write
                with open("result/outputs/hole%02d.bin" % index, "wb") as handle:
                    handle.truncate(15 * 1024 * 1024)
        """,
    )
    result = hostile.run("sparse")
    assert result.failure is not None and "DISPATCHER_MAX_OUTPUT_MB=64" in result.failure
    delivered = hostile.delivered(result)
    written = sum(path.stat().st_size for path in delivered.rglob("*") if path.is_file())
    assert written < 1024 * 1024, f"the worker wrote {written} bytes"
