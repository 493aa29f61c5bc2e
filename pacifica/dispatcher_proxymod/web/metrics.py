"""``GET /metrics``: Prometheus text format, open like ``/health``.

Two kinds of figures:

* fleet-wide, read from the task store's summary tables at each scrape (:mod:`tallies`: a
  few dozen rows whatever the number of tasks), so they are right with any number of web
  processes and workers: tasks in each state, model runs by outcome, finished tasks by state,
  histograms of queue wait, task duration and model duration;
* this web process's own: requests by answer (status code), the latency of ``/receive`` and
  the task messages it published, sent or left to recovery (the broker failed). With several
  web processes each counts its own (scrape each, or sum them).

Labels are few and fixed (states, outcomes, status codes): never a task, event or transaction id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import cherrypy
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .. import store
from ..publisher import CommitPublisher
from ..store import tallies
from .errors import only_get

log = logging.getLogger(__name__)

PREFIX = "pacifica_dispatcher"
_HISTOGRAMS = {
    tallies.QUEUE_WAIT: ("", "Seconds from receipt to the start of the attempt that ended it"),
    tallies.TASK_DURATION: ("state", "Seconds the ending attempt of a task ran, by final state"),
    tallies.MODEL_DURATION: ("outcome", "Seconds each model ran, by outcome"),
}


class StoreCollector:
    """The fleet-wide figures, read from the task store at each scrape."""

    def describe(self) -> list[Metric]:
        """Nothing up front: the store is read only when scraped."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The figures; ``pacifica_dispatcher_store_up`` 0 (and nothing else) when the store
        cannot be read."""
        up = GaugeMetricFamily(f"{PREFIX}_store_up", "1 when the task store could be read")
        try:
            with store.connection():
                snapshot = tallies.read()
        except Exception as exc:
            log.warning("metrics: cannot read the task store: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        tasks = GaugeMetricFamily(f"{PREFIX}_tasks", "Tasks now in each state", labels=["state"])
        for state, count in snapshot.states.items():
            tasks.add_metric([state], count)
        yield tasks
        durations = {h.label: h for h in snapshot.histograms[tallies.MODEL_DURATION]}
        runs = CounterMetricFamily(
            f"{PREFIX}_model_runs", "Model runs recorded, by outcome", labels=["outcome"]
        )
        for outcome in tallies.MODEL_OUTCOMES:
            runs.add_metric([outcome], durations[outcome].count)
        yield runs
        finished = CounterMetricFamily(
            f"{PREFIX}_tasks_finished", "Tasks a worker ran to an end, by state", labels=["state"]
        )
        for histogram in snapshot.histograms[tallies.TASK_DURATION]:
            finished.add_metric([histogram.label], histogram.count)
        yield finished
        for metric, (label, documentation) in _HISTOGRAMS.items():
            family = HistogramMetricFamily(
                f"{PREFIX}_{metric}", documentation, labels=[label] if label else None
            )
            for histogram in snapshot.histograms[metric]:
                family.add_metric(
                    [histogram.label] if label else [],
                    [(le, float(count)) for le, count in histogram.buckets],
                    histogram.total,
                )
            yield family


class PublisherCollector:
    """The messages this web process's :class:`~.publisher.CommitPublisher` published."""

    def __init__(self, publisher: CommitPublisher) -> None:
        self.publisher = publisher

    def describe(self) -> list[Metric]:
        """Nothing up front (read at each scrape)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """``pacifica_dispatcher_messages_total{outcome="sent"|"left_to_recovery"}``."""
        messages = CounterMetricFamily(
            f"{PREFIX}_messages",
            "Task messages this web process published: sent to the broker, or left to the "
            "workers' recovery because the broker failed",
            labels=["outcome"],
        )
        messages.add_metric(["sent"], self.publisher.published)
        messages.add_metric(["left_to_recovery"], self.publisher.left_to_recovery)
        yield messages


class WebMetrics:
    """This process's registry: its own counters and the store's figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests this web process answered, by status code",
            ["code"],
            registry=self.registry,
        )
        self.receive_latency = Histogram(
            f"{PREFIX}_receive_seconds",
            "Seconds this web process took to answer POST /receive",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.registry.register(StoreCollector())

    def start_request(self) -> None:
        """CherryPy hook (``on_start_resource``): time the request, count it at its end."""
        request = cherrypy.request
        request.dispatcher_started = time.monotonic()
        request.hooks.attach("on_end_request", self.end_request)

    def end_request(self) -> None:
        """Count the answer; for ``/receive``, observe how long it took."""
        request = cherrypy.request
        status = str(cherrypy.response.status or "200").split(" ", 1)[0]
        self.requests.labels(code=status if status.isdigit() else "other").inc()
        started = getattr(request, "dispatcher_started", None)
        if request.path_info == "/receive" and started is not None:
            self.receive_latency.observe(time.monotonic() - started)

    @cherrypy.expose
    def metrics(self) -> bytes:
        """``GET /metrics``: every figure in the Prometheus text format."""
        wrong_method = only_get()
        if wrong_method is not None:
            return wrong_method
        cherrypy.response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return generate_latest(self.registry)


#: The CherryPy tool that runs :meth:`WebMetrics.start_request` for every request.
cherrypy.tools.dispatcher_metrics = cherrypy.Tool(
    "on_start_resource", lambda recorder: recorder.start_request()
)
