"""Tests for prepare/check.py: every problem of an event, with the data folder's files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import edited_event

from pacifica.dispatcher_proxymod.prepare.check import event_problems
from pacifica.dispatcher_proxymod.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
COMMAND = [sys.executable, "-m", "pacifica.dispatcher_proxymod", "check"]
SETTINGS = Settings()


def example() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / "event.json").read_text(encoding="utf-8"))
    return document


def data_copy(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(EXAMPLES / "data", data, ignore=shutil.ignore_patterns("__pycache__"))
    return data


def check(
    tmp_path: Path, document: dict[str, Any], *options: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return subprocess.run(
        [*COMMAND, str(path), *options], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_example_has_no_problem(tmp_path: Path) -> None:
    done = check(tmp_path, example(), f"--data-dir={EXAMPLES / 'data'}")
    assert done.returncode == 0, done.stdout
    assert "no problems" in done.stdout
    assert "loose_coupling.py, tight_coupling.py, tight_coupling_twoway.py" in done.stdout
    assert check(tmp_path, example()).returncode == 0  # without the files too


def test_a_broken_upload_gets_every_problem_at_once(tmp_path: Path) -> None:
    data = data_copy(tmp_path)
    document = edited_event(
        example(),
        values={"proxymod.task": "advanec", "proxymod.config_3.OUTPUTS.out_dir": "../elsewhere"},
        renames={"proxymod.config_1.PROJECT.runtime": "proxymod.config_1.PROJECT.runtme"},
    )
    (data / "inputs" / "in_file_two.csv").write_text("year,value\n2010,1\n")  # changed since
    (data / "models" / "tight_coupling.py").write_text("def tight_couplin(a, b, c):\n    pass\n")
    (data / "models" / "loose_coupling.py").write_text("def loose_coupling(:\n")
    (data / "inputs" / "in_file_one.csv").unlink()
    done = check(tmp_path, document, f"--data-dir={data}")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    problems = [line.removeprefix("  - ") for line in lines[1:]]
    assert lines[0].endswith(f"{len(problems)} problem(s), nothing would run:")
    assert problems[:4] == [
        "`proxymod.task`: is advanec (expected advance)",
        "`proxymod.config_1.PROJECT.runtme`: unknown key; did you mean `runtime`?",
        "`proxymod.config_1.PROJECT.runtime`: missing (PROJECT needs runtime, failure); "
        "`proxymod.config_1.PROJECT.runtme` is given: is it misspelt?",
        "`proxymod.config_3.OUTPUTS.out_dir`: contains a '..' component (given '../elsewhere')",
    ]
    rest = "\n".join(problems[4:])
    assert f"`inputs/in_file_one.csv`: not in {data}\n" in rest
    assert "`inputs/in_file_two.csv`: is 18 bytes (the event says " in rest
    assert "`inputs/in_file_two.csv`: sha1 is " in rest
    assert "the file changed after the event was written: run pack again" in rest
    assert "`models/loose_coupling.py, line 1`: SyntaxError: " in rest
    assert "`models/tight_coupling.py`: defines no function tight_coupling" in rest
    assert "did you mean `tight_couplin`?" in rest


def test_a_model_without_its_function_is_named_with_the_nearest(tmp_path: Path) -> None:
    data = data_copy(tmp_path)
    (data / "models" / "tight_coupling.py").write_text("def tight_couplin(a, b, c):\n    pass\n")
    document = example()
    for entry in document["data"]:
        if entry.get("name") == "tight_coupling.py":
            entry["size"] = (data / "models" / "tight_coupling.py").stat().st_size
            entry["hashsum"] = "4e6d4f0ffd1c9cd6f03ae8d15a2e5a4e2ac0e6c0"
    problems = event_problems(json.dumps(document).encode(), SETTINGS, data)
    assert problems[-2].startswith("`models/tight_coupling.py`: sha1 is ")
    assert problems[-1] == (
        "`models/tight_coupling.py`: defines no function tight_coupling "
        "(the dispatcher calls <file name>(config_1, ...)); did you mean `tight_couplin`?"
    )


def test_what_is_no_event_is_said_so(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json")
    done = subprocess.run([*COMMAND, str(garbage)], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "not a CloudEvent" in done.stdout
    missing = subprocess.run(
        [*COMMAND, str(tmp_path / "absent.json")], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and "cannot read" in missing.stderr
