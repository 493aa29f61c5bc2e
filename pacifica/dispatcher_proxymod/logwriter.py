"""A log handler whose callers never wait on a write: lines are written by a thread of its own.

The web process logs two lines per received event (the access line and the task's). Written
at once, each costs a ``write`` and a ``flush`` on stderr inside the handler's lock, which
releases the GIL: under load every request thread then queues for that lock and for the GIL
again (bench/README "Issue 11"). :class:`BufferedLogHandler` formats the line on the caller's
thread (so the task context is the caller's) and appends it to a list; its writer thread
writes what gathered every :data:`FLUSH_SECONDS`, at once for a record of ``WARNING`` or
above, and when :data:`BUFFER_CHARS` characters wait. ``flush()`` and ``close()`` (logging's
own exit hook calls both) write everything left, so a normal stop or SIGTERM loses nothing; a
process killed with SIGKILL loses at most the last :data:`FLUSH_SECONDS` of lines.
"""

from __future__ import annotations

import logging
import threading
from typing import TextIO

#: The longest a line waits before it is written.
FLUSH_SECONDS = 0.1
#: Characters waiting that make the writer write at once.
BUFFER_CHARS = 64 * 1024


class BufferedLogHandler(logging.StreamHandler[TextIO]):
    """A ``StreamHandler`` that hands its lines to a writer thread (see the module)."""

    def __init__(
        self,
        stream: TextIO,
        flush_seconds: float = FLUSH_SECONDS,
        buffer_chars: int = BUFFER_CHARS,
    ) -> None:
        super().__init__(stream)
        self.flush_seconds = flush_seconds
        self.buffer_chars = buffer_chars
        self._lines: list[str] = []
        self._chars = 0
        self._taken = threading.Lock()  # guards the list (never held during a write)
        self._writing = threading.Lock()  # keeps the lines in order between writers
        self._due = threading.Event()
        self._closed = False
        self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Format the record here and leave its line to the writer."""
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        with self._taken:
            self._lines.append(line)
            self._chars += len(line)
            due = self._chars >= self.buffer_chars
        if self._closed:  # no writer any more: written here
            self.flush()
        elif due or record.levelno >= logging.WARNING:
            self._due.set()

    def flush(self) -> None:
        """Write every line handed over so far, then flush the stream."""
        with self._writing:
            with self._taken:
                lines, self._lines, self._chars = self._lines, [], 0
            stream = self.stream
            if stream is None or getattr(stream, "closed", False):
                return
            try:
                if lines:
                    stream.write("".join(lines))
                stream.flush()
            except (OSError, ValueError):  # stderr went away: nothing left to tell it
                pass

    def close(self) -> None:
        """Write what is left and stop the writer."""
        self._closed = True
        self._due.set()
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join(timeout=5)
        self.flush()
        super().close()

    @property
    def waiting(self) -> int:
        """Lines handed over and not written yet."""
        return len(self._lines)

    def _run(self) -> None:
        while not self._closed:
            self._due.wait(self.flush_seconds)
            self._due.clear()
            if self._lines:
                self.flush()
