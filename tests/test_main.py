"""The seed's entry points and packaging: import connects to nothing; coexists with Pacifica."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd="/",
    )


def test_entry_points_import_without_connecting() -> None:
    env = dict(os.environ)
    # every server named here is unreachable: importing must not notice
    env.update(
        DATABASE_URL="postgresql://nobody@127.0.0.1:9/none",
        BROKER_URL="amqp://guest:guest@127.0.0.1:9//",
        DISPATCHER_MODEL_TIMEOUT="not-a-number",
    )
    done = _python(
        """
        import pacifica.dispatcher_proxymod.__main__ as entry
        print(sorted(entry.__all__))
        print(entry.celery_app.main)
        print(entry.ReceiveTaskModel._meta.table_name)
        print(callable(entry.application), callable(entry.main))
        """,
        env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "['ReceiveTaskModel', 'application', 'celery_app', 'main']"
    assert lines[1] == "pacifica.dispatcher_proxymod.app"
    assert lines[2] == "dispatcher_task"
    assert lines[3] == "True True"


def test_lazy_celery_app_reads_settings_when_used() -> None:
    env = dict(os.environ, BROKER_URL="redis://127.0.0.1:6379/7")
    done = _python(
        """
        from pacifica.dispatcher_proxymod.__main__ import celery_app
        print(celery_app.conf.broker_url)
        print(celery_app.conf.task_acks_late)
        """,
        env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["redis://127.0.0.1:6379/7", "True"]


def test_coexists_with_the_pacifica_client_packages() -> None:
    done = _python(
        """
        import pacifica.uploader, pacifica.downloader, pacifica.cli
        import pacifica.dispatcher_proxymod as ours
        from importlib.resources import files
        print(ours.__file__)
        root = files("pacifica.dispatcher_proxymod")
        print(root.joinpath("routes/proxymod.jsonpath").is_file())
        print(root.joinpath("runtime/run_model.py").is_file())
        print(root.joinpath("runtime/proxymod/model.py").is_file())
        """
    )
    assert done.returncode == 0, done.stderr
    location, *present = done.stdout.splitlines()
    assert present == ["True", "True", "True"]
    if os.environ.get("CI") == "true":  # CI tests the installed wheel, not the source tree
        assert "site-packages" in location, location
        assert not Path(location).is_relative_to(
            Path(__file__).resolve().parent.parent / "pacifica"
        )


def test_module_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pacifica.dispatcher_proxymod.__main__", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    for word in ("--host", "--port", "--config", "worker", "standalone", "process"):
        assert word in done.stdout
