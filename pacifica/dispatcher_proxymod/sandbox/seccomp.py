"""The seccomp filter every model runs under: the system calls that would let it hold memory
outside its limits, or gain privileges in a user namespace of its own, end the model.

Refused (the whole model process is killed with ``SIGSYS``, which the verdict names):

* ``memfd_create``: anonymous files whose pages count against no limit of the model;
* ``shmget``: System V shared memory, which stays allocated after the model detaches it;
* ``unshare`` and ``clone`` with ``CLONE_NEWUSER``: a new user namespace (full capabilities
  inside it, the door to most kernel privilege bugs).

``clone3`` answers ``ENOSYS``: its flags sit in memory a filter cannot read, and the C library
then falls back to ``clone``, which the filter can check. System calls of another architecture
(32-bit ones on a 64-bit host) kill the process too (libseccomp's default for foreign ones).

The filter is compiled here with libseccomp (through ``pyseccomp``) into classic BPF; the
sandbox runner (``runtime/run_model.py``, which imports the standard library only) installs it
with ``prctl`` before it imports the model. Where libseccomp is missing the sandbox runs without
it and says so (:func:`seccomp_problem`, ``/health``, the worker's start).
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import tempfile

#: ``CLONE_NEWUSER`` from ``linux/sched.h``.
CLONE_NEWUSER = 0x10000000
#: The signal a refused system call kills the model with.
REFUSED_SIGNAL = signal.SIGSYS
#: What the filter refuses, in words (for the verdict, ``/health`` and the docs).
REFUSED_CALLS = "memfd_create, System V shared memory (shmget) or a new user namespace"


@functools.cache
def _compiled() -> bytes | str:
    """The BPF program, or why there is none (computed once per process)."""
    try:
        import pyseccomp  # optional: it needs the libseccomp C library
    except (ImportError, RuntimeError, OSError) as exc:
        return f"libseccomp is not available ({exc})"
    try:
        rules = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
        kill = pyseccomp.KILL_PROCESS
        rules.add_rule(kill, "memfd_create")
        rules.add_rule(kill, "shmget")
        for call in ("unshare", "clone"):
            flag = pyseccomp.Arg(0, pyseccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)
            rules.add_rule(kill, call, flag)
        rules.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
        with tempfile.TemporaryFile() as sink:
            rules.export_bpf(sink)  # writes through the descriptor
            os.lseek(sink.fileno(), 0, os.SEEK_SET)
            program = os.read(sink.fileno(), os.fstat(sink.fileno()).st_size)
    except (OSError, RuntimeError, ValueError) as exc:
        return f"libseccomp cannot build the filter ({exc})"
    if not program or len(program) % 8:
        return f"libseccomp gave a filter of {len(program)} bytes, not whole BPF instructions"
    return program


def filter_program() -> bytes | None:
    """The compiled filter (classic BPF instructions), or None where it cannot be built."""
    program = _compiled()
    return program if isinstance(program, bytes) else None


def seccomp_problem() -> str | None:
    """Why models run without the filter here, or None when they run with it."""
    program = _compiled()
    return program if isinstance(program, str) else None
