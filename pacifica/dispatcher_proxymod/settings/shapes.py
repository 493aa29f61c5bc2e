"""The shape of the configuration: one frozen dataclass per group of settings, and the choices."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

SANDBOX_MODES = ("auto", "bwrap", "process")
TRANSFER_KINDS = ("pacifica", "local")
KEEP_WORK_MODES = ("never", "on-failure", "always")
AUTH_MODES = ("none", "basic", "bearer")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
#: The Celery queue of a deployment that does not name its own.
DEFAULT_QUEUE = "pacifica.dispatcher_proxymod"


@dataclass(frozen=True)
class ModelLimits:
    """Resource limits for one model process."""

    timeout_seconds: float = 600.0
    memory_mb: int = 1024
    cpu_seconds: int = 600
    file_size_mb: int = 1024
    open_files: int = 256
    processes: int = 64
    tmp_mb: int = 64  # the sandbox's /tmp: part of memory_mb, not on top of it

    @property
    def address_space_mb(self) -> int:
        """The address-space limit: the memory limit less what ``/tmp`` may hold."""
        return self.memory_mb - self.tmp_mb


@dataclass(frozen=True)
class PacificaSettings:
    """Pacifica endpoints and credentials, named as pacifica-cli names them."""

    upload_url: str = "http://127.0.0.1:8066/upload"
    upload_status_url: str = "http://127.0.0.1:8066/get_state"
    upload_policy_url: str = "http://127.0.0.1:8181/uploader"
    upload_validation_url: str = "http://127.0.0.1:8181/ingest"
    download_url: str = "http://127.0.0.1:8081"
    download_policy_url: str = "http://127.0.0.1:8181/status/transactions/by_id"
    auth_type: str = "None"
    auth_username: str | None = None
    auth_password: str | None = None
    verify: bool = True
    ingest_timeout_seconds: float = 180.0
    cart_timeout_seconds: float = 120.0
    request_timeout_seconds: float = 60.0

    def requests_auth(self) -> dict[str, Any]:
        """The ``auth`` keyword the Pacifica client libraries pass to requests."""
        if self.auth_type.lower() == "basic" and self.auth_username is not None:
            return {"auth": (self.auth_username, self.auth_password or "")}
        return {}


@dataclass(frozen=True)
class HttpSettings:
    """Limits of the embedded HTTP server (see server.py and README "HTTP limits")."""

    threads: int = 16
    connection_limit: int = 1000
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    request_timeout_seconds: float = 30.0
    idle_timeout_seconds: float = 30.0
    shutdown_seconds: float = 30.0


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one dispatcher process."""

    database_url: str = "sqlite:///dispatcher.sqlite3"
    broker_url: str = "filesystem://"
    backend_url: str | None = None
    state_dir: Path = Path("dispatcher-state")
    work_dir: Path = Path("dispatcher-state/work")
    keep_work: str = "on-failure"
    transfer: str = "pacifica"
    data_dir: Path | None = None
    output_dir: Path | None = None
    sandbox: str = "auto"
    sandbox_ro_paths: tuple[str, ...] = ()
    limits: ModelLimits = field(default_factory=ModelLimits)
    max_body_bytes: int = 4 * 1024 * 1024
    max_configs: int = 100
    max_files: int = 10_000
    max_output_mb: int = 4096  # per file the larger of allocated (st_blocks) and apparent size
    max_output_files: int = 10_000
    auth: str = "none"
    auth_username: str | None = None
    auth_password: str | None = None
    auth_token: str | None = None
    accepted_sources: tuple[str, ...] = (
        "/pacifica/metadata/ingest",
        "http://metadata.pacifica.org/transactions?_id=",
    )
    heartbeat_seconds: float = 5.0
    stale_after_seconds: float = 60.0
    requeue_after_seconds: float = 600.0
    #: between the workers' recovery passes: a task committed but never published (its web
    #: process died, the broker was down) is queued within this and the 5 s grace
    recovery_interval_seconds: float = 5.0
    #: received tasks waiting for the store's writer (store.Intake); past it /receive gets 503
    intake_queue: int = 1024
    #: longest a receive waits for its row's commit before it answers 503
    intake_wait_seconds: float = 10.0
    #: limit on each statement of the store's writer (SQLite: its wait for a lock)
    statement_timeout_seconds: float = 5.0
    #: limit on each step of the web's publish (connect, a reply, a write): a broker that
    #: hangs holds a batch's answers this long (publisher.py)
    publish_timeout_seconds: float = 2.0
    transfer_retries: int = 5
    retry_backoff_seconds: float = 2.0
    page_size: int = 50
    ui: bool = True  #: serve the dashboard at /ui/
    queue_name: str = DEFAULT_QUEUE
    log_format: str = "text"
    log_level: str = "info"
    log_tail_kb: int = 64
    retention_days: float | None = None
    pacifica: PacificaSettings = field(default_factory=PacificaSettings)
    http: HttpSettings = field(default_factory=HttpSettings)

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some settings replaced (for the CLI's command-line options)."""
        return replace(self, **changes)

    @property
    def broker_dir(self) -> Path:
        """Folder of the embedded (filesystem) broker."""
        return self.state_dir / "broker"
