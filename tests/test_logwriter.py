"""The buffered log handler: callers never write, lines arrive in order, nothing is lost."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import threading
import time

from pacifica.dispatcher_proxymod import logconfig
from pacifica.dispatcher_proxymod.logwriter import BufferedLogHandler
from pacifica.dispatcher_proxymod.settings import Settings


class SlowStream(io.StringIO):
    """A stream whose writes take a while and say which thread made them."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[str] = set()

    def write(self, text: str) -> int:
        self.writers.add(threading.current_thread().name)
        time.sleep(0.05)
        return super().write(text)


def _eventually(written: io.StringIO, text: str) -> None:
    """Wait (up to 5 s) until ``text`` was written to ``written``."""
    deadline = time.monotonic() + 5
    while text not in written.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)


def _logger(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(f"pacifica.test.logwriter.{name}")
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    return logger


def test_callers_hand_over_and_the_writer_writes_in_order() -> None:
    stream = SlowStream()
    handler = BufferedLogHandler(stream, flush_seconds=30.0)  # only flush() writes here
    logger = _logger(handler, "order")
    started = time.monotonic()
    for number in range(50):
        logger.info("line %d", number)
    assert time.monotonic() - started < 0.05 * 50 / 2  # nobody waited on 50 slow writes
    assert stream.getvalue() == "" and handler.waiting == 50
    handler.flush()
    assert stream.getvalue().splitlines() == [f"line {number}" for number in range(50)]
    assert handler.waiting == 0
    handler.close()


def test_lines_are_written_within_the_interval_by_the_writer_thread() -> None:
    stream = SlowStream()
    handler = BufferedLogHandler(stream, flush_seconds=0.05)
    logger = _logger(handler, "interval")
    logger.info("soon")
    _eventually(stream, "soon")
    assert stream.getvalue() == "soon\n"
    assert stream.writers == {"log-writer"}
    handler.close()


def test_a_warning_is_written_at_once() -> None:
    stream = io.StringIO()
    handler = BufferedLogHandler(stream, flush_seconds=60.0)
    logger = _logger(handler, "warning")
    logger.info("before")
    logger.warning("the broker is down")
    _eventually(stream, "broker")
    assert stream.getvalue() == "before\nthe broker is down\n"
    handler.close()


def test_a_full_buffer_is_written_without_waiting_for_the_interval() -> None:
    stream = io.StringIO()
    handler = BufferedLogHandler(stream, flush_seconds=60.0, buffer_chars=100)
    logger = _logger(handler, "full")
    for _ in range(11):
        logger.info("x" * 9)  # 10 characters a line with its newline
    _eventually(stream, "x")
    assert stream.getvalue().count("x" * 9) >= 10
    handler.close()


def test_close_writes_what_is_left_and_stops_the_writer() -> None:
    stream = io.StringIO()
    handler = BufferedLogHandler(stream, flush_seconds=60.0)
    _logger(handler, "close").info("last words")
    handler.close()
    assert stream.getvalue() == "last words\n"
    assert not handler._writer.is_alive()
    _logger(handler, "close").info("after the close")  # no writer: written at once
    assert stream.getvalue() == "last words\nafter the close\n"


def test_configure_buffered_installs_it_and_a_second_configure_closes_it(
    settings: Settings,
) -> None:
    handler = logconfig.configure(settings, buffered=True)
    try:
        assert isinstance(handler, BufferedLogHandler)
        assert logging.getLogger().handlers == [handler]
    finally:
        plain = logconfig.configure(settings)
    assert not isinstance(plain, BufferedLogHandler)
    assert not handler._writer.is_alive()


def test_a_process_that_exits_normally_loses_no_line() -> None:
    program = (
        "import logging, sys\n"
        "from pacifica.dispatcher_proxymod.logwriter import BufferedLogHandler\n"
        "root = logging.getLogger(); root.setLevel(logging.INFO)\n"
        "root.addHandler(BufferedLogHandler(sys.stderr, flush_seconds=60.0))\n"
        "for n in range(1000): logging.info('line %d', n)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr.splitlines() == [f"line {n}" for n in range(1000)]
