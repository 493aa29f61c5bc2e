"""The environment that gives a child process the same settings."""

from __future__ import annotations

from collections.abc import Mapping

from .shapes import Settings

_OWN_PREFIXES = ("DISPATCHER_", "DATABASE_URL", "BROKER_URL", "BACKEND_URL")


def environment_for(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """An environment from which :func:`load_settings` reads ``settings`` back.

    For child processes (the ``standalone`` worker, tests): ``base`` minus our own variables,
    plus ours. Pacifica's variables in ``base`` pass through unchanged.
    """
    env = {key: value for key, value in base.items() if not key.startswith(_OWN_PREFIXES)}
    limits = settings.limits
    values: dict[str, object] = {
        "DATABASE_URL": settings.database_url,
        "BROKER_URL": settings.broker_url,
        "BACKEND_URL": settings.backend_url or "",
        "DISPATCHER_STATE_DIR": settings.state_dir,
        "DISPATCHER_WORK_DIR": settings.work_dir,
        "DISPATCHER_KEEP_WORK": settings.keep_work,
        "DISPATCHER_TRANSFER": settings.transfer,
        "DISPATCHER_DATA_DIR": settings.data_dir or "",
        "DISPATCHER_OUTPUT_DIR": settings.output_dir or "",
        "DISPATCHER_SANDBOX": settings.sandbox,
        "DISPATCHER_SANDBOX_RO_PATHS": ",".join(settings.sandbox_ro_paths),
        "DISPATCHER_MODEL_TIMEOUT": limits.timeout_seconds,
        "DISPATCHER_MODEL_MEMORY_MB": limits.memory_mb,
        "DISPATCHER_MODEL_CPU_SECONDS": limits.cpu_seconds,
        "DISPATCHER_MODEL_FILE_SIZE_MB": limits.file_size_mb,
        "DISPATCHER_MODEL_OPEN_FILES": limits.open_files,
        "DISPATCHER_MODEL_PROCESSES": limits.processes,
        "DISPATCHER_MODEL_TMP_MB": limits.tmp_mb,
        "DISPATCHER_MAX_OUTPUT_MB": settings.max_output_mb,
        "DISPATCHER_MAX_OUTPUT_FILES": settings.max_output_files,
        "DISPATCHER_HEARTBEAT": settings.heartbeat_seconds,
        "DISPATCHER_STALE_AFTER": settings.stale_after_seconds,
        "DISPATCHER_REQUEUE_AFTER": settings.requeue_after_seconds,
        "DISPATCHER_RECOVERY_INTERVAL": settings.recovery_interval_seconds,
        "DISPATCHER_INTAKE_QUEUE": settings.intake_queue,
        "DISPATCHER_INTAKE_WAIT_SECONDS": settings.intake_wait_seconds,
        "DISPATCHER_STATEMENT_TIMEOUT_SECONDS": settings.statement_timeout_seconds,
        "DISPATCHER_PUBLISH_TIMEOUT_SECONDS": settings.publish_timeout_seconds,
        "DISPATCHER_TRANSFER_RETRIES": settings.transfer_retries,
        "DISPATCHER_RETRY_BACKOFF": settings.retry_backoff_seconds,
        "DISPATCHER_QUEUE": settings.queue_name,
        "DISPATCHER_LOG_FORMAT": settings.log_format,
        "DISPATCHER_LOG_LEVEL": settings.log_level,
        "DISPATCHER_LOG_TAIL_KB": settings.log_tail_kb,
        "DISPATCHER_RETENTION_DAYS": ""
        if settings.retention_days is None
        else settings.retention_days,
    }
    env.update({key: str(value) for key, value in values.items() if value != ""})
    return env
