"""Settings: environment over config file over defaults; clear errors naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacifica.dispatcher_proxymod.errors import SettingsError
from pacifica.dispatcher_proxymod.settings import load_settings


def test_defaults_need_no_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.database_url == f"sqlite:///{tmp_path / 'dispatcher.sqlite3'}"
    assert settings.broker_url == "filesystem://"
    assert settings.backend_url is None
    assert settings.transfer == "pacifica"
    assert settings.sandbox == "auto"
    assert settings.auth == "none"
    assert settings.work_dir == tmp_path / "dispatcher-state" / "work"
    assert settings.limits.timeout_seconds == 600
    assert settings.queue_name == "pacifica.dispatcher_proxymod"
    assert settings.log_format == "text" and settings.log_tail_kb == 64
    assert settings.retention_days is None


def test_operations_settings() -> None:
    settings = load_settings(
        {
            "DISPATCHER_QUEUE": "site-b",
            "DISPATCHER_LOG_FORMAT": "JSON",
            "DISPATCHER_LOG_TAIL_KB": "8",
            "DISPATCHER_RETENTION_DAYS": "30",
        }
    )
    assert settings.queue_name == "site-b" and settings.log_format == "json"
    assert settings.log_tail_kb == 8 and settings.retention_days == 30
    assert load_settings({"DISPATCHER_RETENTION_DAYS": "off"}).retention_days is None


def test_http_limits() -> None:
    defaults = load_settings({}).http
    assert (defaults.threads, defaults.connection_limit) == (16, 1000)
    assert (defaults.max_header_bytes, defaults.max_headers) == (16384, 100)
    assert defaults.request_timeout_seconds == defaults.idle_timeout_seconds == 30
    http = load_settings(
        {
            "DISPATCHER_HTTP_THREADS": "4",
            "DISPATCHER_HTTP_CONNECTION_LIMIT": "50",
            "DISPATCHER_HTTP_MAX_HEADER_BYTES": "4096",
            "DISPATCHER_HTTP_MAX_HEADERS": "20",
            "DISPATCHER_HTTP_REQUEST_TIMEOUT": "5",
            "DISPATCHER_HTTP_IDLE_TIMEOUT": "7.5",
            "DISPATCHER_HTTP_SHUTDOWN_TIMEOUT": "0",
        }
    ).http
    assert (http.threads, http.connection_limit, http.max_header_bytes) == (4, 50, 4096)
    assert (http.max_headers, http.request_timeout_seconds) == (20, 5)
    assert (http.idle_timeout_seconds, http.shutdown_seconds) == (7.5, 0)
    assert load_settings({}).log_level == "info"
    assert load_settings({"DISPATCHER_LOG_LEVEL": "DEBUG"}).log_level == "debug"


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    config = tmp_path / "dispatcher.ini"
    config.write_text(
        "[dispatcher]\nbroker_url = redis://file/0\ndispatcher_model_timeout = 30\n"
        "dispatcher_model_memory_mb = 256\n"
    )
    settings = load_settings({"DISPATCHER_CONFIG": str(config), "BROKER_URL": "amqp://env//"})
    assert settings.broker_url == "amqp://env//"
    assert settings.limits.timeout_seconds == 30
    assert settings.limits.cpu_seconds == 31
    assert settings.limits.memory_mb == 256


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"DISPATCHER_MODEL_TIMEOUT": "soon"}, "DISPATCHER_MODEL_TIMEOUT"),
        ({"DISPATCHER_MODEL_MEMORY_MB": "1"}, "DISPATCHER_MODEL_MEMORY_MB"),
        ({"DISPATCHER_SANDBOX": "docker"}, "DISPATCHER_SANDBOX"),
        ({"DISPATCHER_KEEP_WORK": "sometimes"}, "DISPATCHER_KEEP_WORK"),
        ({"DISPATCHER_AUTH": "basic"}, "DISPATCHER_AUTH"),
        ({"DISPATCHER_AUTH": "bearer"}, "DISPATCHER_AUTH"),
        ({"DISPATCHER_CONFIG": "/no/such/file.ini"}, "DISPATCHER_CONFIG"),
        ({"DISPATCHER_QUEUE": "two words"}, "DISPATCHER_QUEUE"),
        ({"DISPATCHER_LOG_FORMAT": "xml"}, "DISPATCHER_LOG_FORMAT"),
        ({"DISPATCHER_LOG_TAIL_KB": "0"}, "DISPATCHER_LOG_TAIL_KB"),
        ({"DISPATCHER_RETENTION_DAYS": "soon"}, "DISPATCHER_RETENTION_DAYS"),
        ({"DISPATCHER_HTTP_THREADS": "0"}, "DISPATCHER_HTTP_THREADS"),
        ({"DISPATCHER_LOG_LEVEL": "loud"}, "DISPATCHER_LOG_LEVEL"),
        ({"DISPATCHER_HTTP_MAX_HEADER_BYTES": "100"}, "DISPATCHER_HTTP_MAX_HEADER_BYTES"),
        ({"DISPATCHER_HTTP_REQUEST_TIMEOUT": "soon"}, "DISPATCHER_HTTP_REQUEST_TIMEOUT"),
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    assert caught.value.name == name
    assert name in str(caught.value)


def test_pacifica_endpoints_use_pacifica_cli_names(tmp_path: Path) -> None:
    cli_config = tmp_path / "config.ini"
    cli_config.write_text(
        "[endpoints]\nupload_url = http://ingest.example/upload\n"
        "[authentication]\ntype = basic\nusername = me\npassword = pw\n"
    )
    settings = load_settings(
        {"PACIFICA_CLI_CONFIG": str(cli_config), "DOWNLOAD_URL": "http://cartd.example"}
    )
    assert settings.pacifica.upload_url == "http://ingest.example/upload"
    assert settings.pacifica.download_url == "http://cartd.example"
    assert settings.pacifica.requests_auth() == {"auth": ("me", "pw")}


def test_accepted_sources_are_configurable() -> None:
    settings = load_settings({"DISPATCHER_ACCEPTED_SOURCES": " /a , http://b/?_id= ,"})
    assert settings.accepted_sources == ("/a", "http://b/?_id=")


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(AttributeError):
        settings.broker_url = "x"  # type: ignore[misc]
    assert settings.with_changes(broker_url="x").broker_url == "x"


def test_environment_for_reads_back_the_same_settings(tmp_path: Path) -> None:
    from pacifica.dispatcher_proxymod.settings import environment_for

    original = load_settings(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
            "DISPATCHER_MODEL_TIMEOUT": "12.5",
            "DISPATCHER_SANDBOX_RO_PATHS": "/opt/a,/opt/b",
            "DISPATCHER_TRANSFER": "local",
            "DISPATCHER_DATA_DIR": str(tmp_path),
            "UPLOAD_URL": "http://ingest.example/upload",
            "DISPATCHER_QUEUE": "site-b",
            "DISPATCHER_LOG_FORMAT": "json",
            "DISPATCHER_RETENTION_DAYS": "0.5",
        }
    )
    env = environment_for(original, {"DISPATCHER_AUTH": "basic", "UPLOAD_URL": "http://x/u"})
    assert "DISPATCHER_AUTH" not in env and env["UPLOAD_URL"] == "http://x/u"
    again = load_settings(env)
    assert again.with_changes(pacifica=original.pacifica) == original
