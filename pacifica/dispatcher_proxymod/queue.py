"""The Celery side: the app, the one task, and the recovery of tasks whose message was lost.

Delivery is at least once: messages are acknowledged after the task ran, re-queued when a
worker process is lost, and the task rows (not the broker) say what still has to run, so a
periodic recovery step re-publishes what a broker or a killed worker dropped. Running a task
twice is harmless: :func:`execution.execute` claims the row atomically first.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from celery import Celery, signals
from celery import Task as CeleryTask
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from kombu import Producer
from kombu.entity import Queue

from . import logconfig, retention, store
from .pipelining import REDIS_TRANSPORT, batch
from .proxymod.routing import prepare as prepare_route
from .sandbox import sandbox_controls, sandbox_status
from .settings import DEFAULT_QUEUE, Settings, load_settings
from .transfer import make_transfer

log = logging.getLogger(__name__)

APP_NAME = "pacifica.dispatcher_proxymod.app"
TASK_NAME = "pacifica.dispatcher_proxymod.tasks.receive"
#: The default queue (``DISPATCHER_QUEUE`` names another).
QUEUE_NAME = DEFAULT_QUEUE


#: How long a Redis reply may take (the worker's BRPOP returns every second).
REDIS_SOCKET_TIMEOUT_SECONDS = 10.0
#: How long connecting to the broker may take (retries included), unless shorter above.
CONNECT_TIMEOUT_SECONDS = 5.0


def connect_timeout(publish_timeout: float | None) -> float:
    """How long connecting to the broker may take: the publish timeout, if shorter."""
    return min(CONNECT_TIMEOUT_SECONDS, publish_timeout or math.inf)


def broker_options(settings: Settings, publish_timeout: float | None = None) -> dict[str, Any]:
    """Transport options for the configured broker (the embedded one needs its folders);
    ``publish_timeout`` bounds each socket read and write (see :func:`create_celery_app`)."""
    url = settings.broker_url
    if url.startswith("filesystem:"):
        folder = settings.broker_dir
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    # the web's publish tries to connect once (kombu would sleep 2 s before a second try)
    once = {"max_retries": 0} if publish_timeout else {}
    if url.startswith(("redis:", "rediss:")):
        # a message not acknowledged within the hour goes back to the queue; a reply that
        # takes longer than REDIS_SOCKET_TIMEOUT_SECONDS (the web's: its publish timeout) is a
        # dead connection (a peer gone without a reset), not a wait: nothing may hang on it
        return {
            "visibility_timeout": 3600,
            "socket_connect_timeout": connect_timeout(publish_timeout),
            "socket_timeout": publish_timeout or REDIS_SOCKET_TIMEOUT_SECONDS,
            **once,
        }
    if publish_timeout and url.startswith(("amqp:", "amqps:", "pyamqp:")):
        # py-amqp's socket timeouts (a publish is a write; a full send buffer would block it)
        return {"read_timeout": publish_timeout, "write_timeout": publish_timeout, **once}
    return {}


def broker_transport(settings: Settings) -> str | None:
    """The kombu transport for the broker, when not the one its URL names: for ``redis://``,
    kombu's own with the publishes of a batch pipelined (see :mod:`.pipelining`)."""
    return REDIS_TRANSPORT if settings.broker_url.startswith("redis:") else None


def celery_config(settings: Settings, publish_timeout: float | None = None) -> dict[str, Any]:
    """Celery's configuration for ``settings`` (``publish_timeout``: see
    :func:`create_celery_app`)."""
    return {
        "broker_url": settings.broker_url,
        "broker_transport": broker_transport(settings),
        "result_backend": settings.backend_url,
        "task_ignore_result": settings.backend_url is None,
        "broker_transport_options": broker_options(settings, publish_timeout),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": connect_timeout(publish_timeout),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # a running model keeps running through a broker blip; the message redelivered meanwhile
        # finds the task claimed and is put off (execution.execute), so nothing runs twice
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
        # one queue per deployment: workers only ever consume their own deployment's messages
        "task_default_queue": settings.queue_name,
        "task_queues": [Queue(settings.queue_name, durable=True)],
        "task_serializer": "json",
        "accept_content": ["json"],
        "dispatcher_settings": settings,
    }


def create_celery_app(
    settings: Settings | None = None, publish_timeout: float | None = None
) -> Celery:
    """The Celery app; creating it connects to nothing.

    Without ``settings`` they are read from the environment when Celery first needs its
    configuration (so ``__main__`` can expose ``celery_app`` without reading anything).
    ``publish_timeout`` (the web's: ``DISPATCHER_PUBLISH_TIMEOUT_SECONDS``) bounds each step
    of a publish on a broker that hangs: one connection attempt and each socket read or write,
    instead of the worker's 5 s connect (with retries) and 10 s Redis reply. The web's intake
    publishes each committed batch before its requests are answered (publisher.py).
    """
    app = Celery(APP_NAME, set_as_current=False)
    if settings is None:
        app.add_defaults(lambda: celery_config(load_settings(), publish_timeout))
    else:
        app.conf.update(celery_config(settings, publish_timeout))
    app.task(name=TASK_NAME, bind=True, acks_late=True, max_retries=None)(receive)

    def on_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            start_worker_services(app)

    def on_setup_logging(loglevel: Any = None, **_: Any) -> None:
        # connected at all, this receiver stops Celery from configuring logging its own way
        logconfig.configure(app.conf.dispatcher_settings, loglevel or logging.INFO)

    signals.worker_ready.connect(on_ready, weak=False)
    signals.setup_logging.connect(on_setup_logging, weak=False)
    return app


def start_worker_services(app: Celery) -> RecoveryLoop:
    """In a worker's main process: check the sandbox loudly and start the recovery loop."""
    settings: Settings = app.conf.dispatcher_settings
    isolation = sandbox_status(settings)
    if isolation != "bwrap":
        log.warning(
            "NO SANDBOX: bubblewrap is not usable here; models run with process isolation and "
            "limits only (set DISPATCHER_SANDBOX=bwrap to refuse to run them instead)"
        )
    log.info(
        "sandbox controls: %s",
        "; ".join(f"{name}: {text}" for name, text in sandbox_controls(settings).items()),
    )
    loop = RecoveryLoop(app, settings)
    loop.start()
    return loop


def receive(self: CeleryTask, task_id: str) -> str:
    """Celery task: run one recorded task; retry later when it is busy elsewhere or transient."""
    # the worker's side only: the web process, which imports this module to publish, never
    # loads the handler, its transfers and report writers (about 6 MiB of its memory)
    from .execution import execute

    settings: Settings = self.app.conf.dispatcher_settings
    with logconfig.task_context(task_id):
        _ensure_store(settings)
        try:
            result = execute(settings, task_id, make_transfer(settings))
        finally:
            store.close_database()
        if result.state in ("busy", "retry"):
            raise self.retry(countdown=result.countdown, max_retries=None)
    # what became of the task in words ("succeeded", "failed", ...), not Celery's "done"
    return result.status.state.value if result.status is not None else result.state


_opened: dict[str, bool] = {}
_opened_lock = threading.Lock()


def _ensure_store(settings: Settings) -> None:
    """Open the task store once per process (after a fork, too)."""
    with _opened_lock:
        if not _opened.get(settings.database_url):
            store.open_database(settings)
            _opened[settings.database_url] = True


@signals.worker_process_init.connect
def _forget_parent_connections(**_: Any) -> None:
    """A forked pool process must not share the parent's database connection."""
    _opened.clear()


@signals.worker_init.connect
def _warm_up(sender: Any = None, **_: Any) -> None:
    """Before the pool forks: probe the sandbox and compile the route once for all children."""
    settings = getattr(getattr(sender, "app", None), "conf", {}).get("dispatcher_settings")
    if isinstance(settings, Settings):
        sandbox_status(settings)
        prepare_route(settings)


#: After a publish failed, the same app does not try its broker again for this long: each try
#: waits out the connect timeout, and the rows left unqueued meanwhile are recovery's anyway.
PUBLISH_PAUSE_SECONDS = 5.0
#: When each app may try its broker again (monotonic clock).
_paused_until: weakref.WeakKeyDictionary[Celery, float] = weakref.WeakKeyDictionary()


def paused(app: Celery) -> bool:
    """Whether a publish through ``app`` failed less than ``PUBLISH_PAUSE_SECONDS`` ago."""
    return time.monotonic() < _paused_until.get(app, 0.0)


def publish(app: Celery, task_id: str) -> bool:
    """Send the task's message; False (logged) when the broker cannot be reached now, or could
    not be moments ago."""
    return publish_many(app, [task_id])


def publish_many(app: Celery, task_ids: Sequence[str], mark: bool = True) -> bool:
    """Send the tasks' messages as one batch, then mark them queued with one UPDATE (unless
    not ``mark``: rows inserted marked already, see :class:`~.publisher.CommitPublisher`).

    Each message is Celery's own (:func:`send_messages`: what ``send_task`` sends), all through
    one producer and its connection, in one round trip where the transport allows
    (:func:`.pipelining.batch`). False when the broker cannot be reached now (logged once; no
    message of the batch is marked, so recovery re-publishes them all), or could not be moments
    ago (then it is not tried again yet).
    """
    if not task_ids:
        return True
    if paused(app):
        log.warning(
            "not queueing %s: the broker failed moments ago; recovery will", _tasks(task_ids)
        )
        return False
    try:
        with app.producer_or_acquire() as producer, batch(producer):
            # the queue declared once per batch (kombu remembers it per connection) instead
            # of looked up for each message: a fifth less CPU, the same message
            # (tests/test_publisher.py)
            producer.maybe_declare(_bound_queue(app, producer))
            send_messages(app, producer, task_ids)
    except Exception:  # broker down: the rows stay unqueued and recovery re-publishes them
        _paused_until[app] = time.monotonic() + PUBLISH_PAUSE_SECONDS
        log.warning(
            "could not queue %s; recovery will re-queue %s, and this broker is not tried "
            "again for %g s",
            _tasks(task_ids),
            "it" if len(task_ids) == 1 else "them",
            PUBLISH_PAUSE_SECONDS,
            exc_info=True,
        )
        return False
    if not mark:
        return True
    try:
        store.mark_queued_many(task_ids)
    except Exception:  # the messages are out; a missing mark only causes a harmless re-publish
        log.warning("queued %s but could not mark it", _tasks(task_ids), exc_info=True)
    return True


#: Our queue bound to each producer's channel: kombu's ``maybe_declare`` binds an unbound queue
#: anew (two copies) on every call, 50 us of a batch on Redis. Keyed by the producer (the bound
#: queue refers to the channel, not to the producer), so an entry goes with its producer.
_bound_queues: weakref.WeakKeyDictionary[Producer, tuple[Queue, Queue]] = (
    weakref.WeakKeyDictionary()
)


def _bound_queue(app: Celery, producer: Producer) -> Queue:
    """``app``'s queue bound to ``producer``'s channel (bound again only for a new channel)."""
    queue = app.amqp.queues[app.conf.task_default_queue]
    known = _bound_queues.get(producer)
    if known is not None and known[0] is queue and known[1].channel is producer.channel:
        return known[1]
    bound: Queue = queue.bind(producer.channel)
    _bound_queues[producer] = (queue, bound)
    return bound


def send_messages(app: Celery, producer: Producer, task_ids: Sequence[str]) -> None:
    """Send each task's message through ``producer``: what ``app.send_task(TASK_NAME,
    args=[task_id], task_id=task_id, retry=False, producer=producer, declare=[])`` sends, with
    what is the same for the whole batch worked out once.

    Celery's own steps, as its ``send_task`` takes them for a task sent by name without ETA,
    countdown or expiry (celery/app/base.py; the same from 5.4.0 to 5.6.3, the range
    pyproject.toml allows): the route (no ``task_routes`` here, so it does not depend on the
    arguments), the parent task's ids when inside one, ``app.amqp.create_task_message`` (the
    configured task protocol) given its origin and reply-to once and ``argsrepr`` made without
    ``saferepr``'s token stream (:func:`_args_repr`), then ``app.amqp.send_task_message`` (the
    publish signals, the task-sent event when enabled). Left out: the ``AsyncResult`` and the
    result backend's ``on_task_call`` (the caller never waits on a result; with a Redis result
    backend it subscribed this process to every task's result channel, never read).
    tests/test_queue.py fails when these steps no longer hand ``send_task_message`` what
    ``send_task`` does, tests/test_publisher.py when the delivered messages differ.
    """
    amqp = app.amqp
    options = amqp.router.route({}, TASK_NAME, None, None, None)
    root_id = parent_id = None
    parent = app.current_worker_task
    if parent:
        root_id = parent.request.root_id or parent.request.id
        parent_id = parent.request.id
        if app.conf.task_inherit_parent_priority:
            options.setdefault("priority", parent.request.delivery_info.get("priority"))
    create, send = amqp.create_task_message, amqp.send_task_message
    common = {
        "reply_to": app.thread_oid,
        "create_sent_event": app.conf.task_send_sent_event,
        "root_id": root_id,
        "parent_id": parent_id,
        "origin": anon_nodename(),
        "kwargsrepr": saferepr({}, amqp.kwargsrepr_maxsize),
        "ignore_result": False,
    }
    plain_limit = amqp.argsrepr_maxsize // 2  # well inside where saferepr starts to cut
    with producer.connection._reraise_as_library_errors():
        for task_id in task_ids:
            args = [task_id]
            args_repr = _args_repr(task_id, plain_limit, amqp.argsrepr_maxsize)
            message = create(task_id, TASK_NAME, args, argsrepr=args_repr, **common, **options)
            send(producer, TASK_NAME, message, retry=False, declare=[], **options)


def _args_repr(task_id: str, plain_limit: int, maxsize: int) -> str:
    """``saferepr([task_id], maxsize)``: a task id (a UUID) shorter than ``plain_limit`` and
    without a quote is quoted as it is; anything else goes through ``saferepr`` (a quote
    escaped, a long id cut). tests/test_queue.py checks both against ``saferepr``."""
    if len(task_id) < plain_limit and "'" not in task_id:
        return f"['{task_id}']"
    text: str = saferepr([task_id], maxsize)
    return text


def _tasks(task_ids: Sequence[str]) -> str:
    """``task <id>``, or ``<n> tasks (<first id>, ...)`` for a log line."""
    if len(task_ids) == 1:
        return f"task {task_ids[0]}"
    return f"{len(task_ids)} tasks ({task_ids[0]}, ...)"


def recover(app: Celery, settings: Settings) -> int:
    """Re-publish, as one batch, every task whose message may have been lost; how many were
    sent."""
    task_ids = store.needing_requeue(settings.requeue_after_seconds, settings.stale_after_seconds)
    if not task_ids or not publish_many(app, task_ids):
        return 0
    log.info("recovery re-queued %d task(s)", len(task_ids))
    return len(task_ids)


class RecoveryLoop:
    """Runs :func:`recover` every ``recovery_interval_seconds`` in a daemon thread, and with
    ``DISPATCHER_RETENTION_DAYS`` set the retention purge (at start, then hourly)."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dispatcher-recovery", daemon=True)

    def start(self) -> None:
        """Start the loop (idempotent)."""
        if not self._thread.is_alive():
            self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        next_purge = time.monotonic()
        while True:
            try:
                _ensure_store(self.settings)
                recover(self.app, self.settings)
                days = self.settings.retention_days
                if days is not None and time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + retention.RETENTION_INTERVAL_SECONDS
                    retention.purge(self.settings, days)
            except Exception:
                log.warning("recovery pass failed; will try again", exc_info=True)
            finally:
                store.close_database()
            if self._stop.wait(self.settings.recovery_interval_seconds):
                return
