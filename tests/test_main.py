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


#: Modules the web process has no use for: requests (Notifications' and Pacifica's clients, the
#: subscribe command's and the worker's transfers), jsonpath2 and its ANTLR runtime (the worker's
#: full route match). Each would cost the web process memory it never uses (bench/README.md).
NOT_IN_THE_WEB_PROCESS = ("requests", "urllib3", "jsonpath2", "antlr4")


def test_the_web_process_does_not_load_what_only_workers_and_commands_use(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISPATCHER_", "DATABASE_"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'tasks.sqlite3'}",
        BROKER_URL="filesystem://",
        DISPATCHER_STATE_DIR=str(tmp_path / "state"),
    )
    # what ``serve`` does before it starts the server: the console script's imports, the app
    done = _python(
        f"""
        import sys
        import cherrypy
        from pacifica.dispatcher_proxymod.__main__ import main
        from pacifica.dispatcher_proxymod.cli import build_parser
        from pacifica.dispatcher_proxymod.server import mount
        from pacifica.dispatcher_proxymod.settings import load_settings
        from pacifica.dispatcher_proxymod.web import create_app

        build_parser()
        settings = load_settings()
        app = create_app(settings)
        mount(cherrypy.tree, "127.0.0.1", 0, settings.http, settings.max_body_bytes)
        app.close()
        loaded = {{name.split(".")[0] for name in sys.modules}}
        print(sorted(loaded & set({NOT_IN_THE_WEB_PROCESS!r})))
        """,
        env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_worker_side_still_finds_what_it_imports_when_used(tmp_path: Path) -> None:
    done = _python(
        """
        import sys
        from pacifica.dispatcher_proxymod.proxymod.routing import prepare
        from pacifica.dispatcher_proxymod.settings import Settings
        from pacifica.dispatcher_proxymod.transfer import make_transfer

        settings = Settings()
        print(type(make_transfer(settings, "pacifica")).__name__, "requests" in sys.modules)
        prepare(settings)
        print("jsonpath2" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["PacificaTransfer True", "True"]
