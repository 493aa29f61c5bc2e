"""What publishing a batch costs the web process: ``queue.publish_many`` against the ``send_task``
loop it replaced, in this process, on each broker.

CPU time of this thread (``time.thread_time``) per message, for batches of 1, 8 and 64 task ids,
without the UPDATE (the web's rows are inserted marked queued: ``publish_many(mark=False)``).
Each round runs, for each batch size, the two in alternation (A B A B ...):

* ``send_task loop``: the publish_many of before (one producer, one pipeline on Redis), each
  message made by ``app.send_task``;
* ``publish_many``: today's (``queue.send_messages``: Celery's ``create_task_message`` and
  ``send_task_message`` with the per-batch parts worked out once).

The table shows medians over the rounds and the ratio of the two per round.

    .venv/bin/python bench/publish_cost.py [--quick] [--rounds 15] [--setups pg-redis,pg-rabbitmq]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from benchkit import (
    EXAMPLE_EVENT,
    SETUPS,
    Setup,
    make_setup,
    median,
    print_machine,
    print_table,
    purge_broker,
    scratch,
)
from celery import Celery

from pacifica.dispatcher_proxymod import store
from pacifica.dispatcher_proxymod.events import parse_http
from pacifica.dispatcher_proxymod.pipelining import batch
from pacifica.dispatcher_proxymod.queue import TASK_NAME, create_celery_app, publish_many
from pacifica.dispatcher_proxymod.settings import Settings
from pacifica.dispatcher_proxymod.states import TaskStatus

SIZES = (1, 8, 64)
#: Messages per measurement (so each lasts tens of milliseconds, whatever the batch size).
MESSAGES_PER_MEASUREMENT = 512
VARIANTS = ("send_task loop", "publish_many")


def send_task_loop(app: Celery, task_ids: Sequence[str]) -> None:
    """publish_many as it was before (without its UPDATE): ``send_task`` for each id on one
    producer."""
    with app.producer_or_acquire() as producer, batch(producer):
        producer.maybe_declare(app.amqp.queues[app.conf.task_default_queue])
        for task_id in task_ids:
            app.send_task(
                TASK_NAME,
                args=[task_id],
                task_id=task_id,
                retry=False,
                producer=producer,
                declare=[],
            )


def cpu_us_per_message(step: Callable[[], object], batches: int, size: int) -> float:
    """This thread's CPU microseconds per message over ``batches`` calls of ``step``."""
    started = time.thread_time()
    for _ in range(batches):
        step()
    return 1e6 * (time.thread_time() - started) / (batches * size)


def record_tasks(count: int) -> list[str]:
    """``count`` task rows of the example event; their ids."""
    document = json.loads(EXAMPLE_EVENT.read_text())
    ids = []
    for _ in range(count):
        document["eventID"] = uuid.uuid4().hex
        event = parse_http({"Content-Type": "application/json"}, json.dumps(document).encode())
        ids.append(store.record_event(event, TaskStatus.ACCEPTED, route="proxymod").task.id)
    return ids


def measure(setup: Setup, rounds: int, work: Path) -> dict[tuple[int, str], list[float]]:
    """Per (batch size, variant): CPU us per message, one figure per round."""
    settings = Settings(
        database_url=setup.database_url, broker_url=setup.broker_url, state_dir=work
    )
    store.open_database(settings)
    app = create_celery_app(settings)
    try:
        task_ids = record_tasks(max(SIZES))
        steps: dict[tuple[int, str], Callable[[], object]] = {}
        for size in SIZES:
            ids = task_ids[:size]
            steps[size, VARIANTS[0]] = partial(send_task_loop, app, ids)
            steps[size, VARIANTS[1]] = partial(publish_many, app, ids, mark=False)
        for step in steps.values():  # warm up: connections, the queue declared, caches
            step()
        figures: dict[tuple[int, str], list[float]] = {key: [] for key in steps}
        for _ in range(rounds):
            for (size, variant), step in steps.items():
                batches = max(1, MESSAGES_PER_MEASUREMENT // size)
                figures[size, variant].append(cpu_us_per_message(step, batches, size))
            purge_broker(setup, work)
        return figures
    finally:
        store.close_database()
        purge_broker(setup, work)


def main() -> int:
    """Measure and print one table per setup."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--setups", default="pg-redis,pg-rabbitmq")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    names = [name for name in args.setups.split(",") if name]
    unknown = set(names) - set(SETUPS)
    if unknown:
        parser.error(f"unknown setups {sorted(unknown)}: choose from {', '.join(SETUPS)}")
    print_machine()
    for name in names:
        with scratch("bench-publish-cost-") as work:
            figures = measure(make_setup(name, work, "receive"), rounds, work)
        print(f"\n# setup {name}, {rounds} rounds, CPU us per message (this thread)")
        rows = []
        for size in SIZES:
            old, new = (figures[size, variant] for variant in VARIANTS)
            ratios = [n / o for n, o in zip(new, old, strict=True)]
            old_m, new_m = median(old), median(new)
            rows.append(
                [
                    size,
                    f"{old_m:.0f}",
                    f"{new_m:.0f}",
                    f"{median(ratios):.2f}",
                    f"{size * (old_m - new_m):.0f}",
                    " ".join(f"{r:.2f}" for r in ratios),
                ]
            )
        print_table(
            [
                "batch",
                "send_task loop",
                "publish_many",
                "ratio (median of rounds)",
                "saved per batch (us)",
                "ratio per round",
            ],
            rows,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
