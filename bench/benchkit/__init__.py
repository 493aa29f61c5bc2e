"""Helpers shared by the benchmark scripts (run as ``.venv/bin/python bench/<script>.py``).

Every benchmark runs against real processes started from this checkout with the dev venv
(``.venv/bin/python -m pacifica.dispatcher_proxymod ...``) and stops only what it started.

* :mod:`.base`    paths, :class:`BenchError`, medians and Markdown tables
* :mod:`.setups`  databases and brokers: rows and queued messages read around the code under test
* :mod:`.procs`   the processes (dispatcher under waitress or cheroot, ceilings, workers)
* :mod:`.load`    example events, wrk, POSTs from threads, slow clients
* :mod:`.cpu`     CPU per request (web, PostgreSQL backends, broker), py-spy
* :mod:`.rss`     peak memory of processes and trees
"""

from .base import (
    BENCH,
    EXAMPLE_DATA,
    EXAMPLE_EVENT,
    EXAMPLES,
    MIB,
    PYTHON,
    ROOT,
    BenchError,
    machine,
    median,
    print_machine,
    print_table,
    ratio,
)
from .cpu import PY_SPY, CpuMeter, start_py_spy, summarize_profile, summarize_self
from .load import (
    EVENT_ID_PLACEHOLDER,
    WRK_ID_LENGTH,
    WRK_SCRIPT,
    HealthProbe,
    SlowClients,
    WrkResult,
    event_template,
    example_event,
    post_bodies,
    post_many,
    run_wrk,
)
from .procs import (
    SERVERS,
    Service,
    free_port,
    scratch,
    start,
    start_ceiling,
    start_cherrypy_floor,
    start_web,
    start_worker,
    wait_http,
)
from .rss import TreeMemory, body_peak
from .setups import (
    BENCH_DATABASE,
    POSTGRES_SERVER,
    RABBIT_VHOST,
    SETUPS,
    SLOTS,
    Setup,
    broker_task_ids,
    dispatcher_env,
    empty_tasks,
    ensure_postgres_database,
    ensure_rabbit_vhost,
    make_setup,
    purge_broker,
    sql,
    task_ids,
    task_rows,
)

__all__ = [
    "BENCH",
    "BENCH_DATABASE",
    "EVENT_ID_PLACEHOLDER",
    "EXAMPLES",
    "EXAMPLE_DATA",
    "EXAMPLE_EVENT",
    "MIB",
    "POSTGRES_SERVER",
    "PYTHON",
    "PY_SPY",
    "RABBIT_VHOST",
    "ROOT",
    "SERVERS",
    "SETUPS",
    "SLOTS",
    "WRK_ID_LENGTH",
    "WRK_SCRIPT",
    "BenchError",
    "CpuMeter",
    "HealthProbe",
    "Service",
    "Setup",
    "SlowClients",
    "TreeMemory",
    "WrkResult",
    "body_peak",
    "broker_task_ids",
    "dispatcher_env",
    "empty_tasks",
    "ensure_postgres_database",
    "ensure_rabbit_vhost",
    "event_template",
    "example_event",
    "free_port",
    "machine",
    "make_setup",
    "median",
    "post_bodies",
    "post_many",
    "print_machine",
    "print_table",
    "purge_broker",
    "ratio",
    "run_wrk",
    "scratch",
    "sql",
    "start",
    "start_ceiling",
    "start_cherrypy_floor",
    "start_py_spy",
    "start_web",
    "start_worker",
    "summarize_profile",
    "summarize_self",
    "task_ids",
    "task_rows",
    "wait_http",
]
