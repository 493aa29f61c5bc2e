"""Run one user model in its own sandboxed process, with limits, and say what happened.

Every model runs as ``python -I -S runtime/run_model.py ...`` (the bare interpreter: no
site-packages, no ``PYTHON*`` variables) with an environment built from an allow list, resource
limits (see ``runtime/run_model.py``), a wall-clock timeout after which everything it started is
killed, and its stdout and stderr appended to the caller's files.

Isolation ``bwrap`` (bubblewrap) adds: a file system built from scratch with the system's
``/usr`` (and the ``/bin``, ``/lib*`` links), the Python installation (its site-packages hidden),
the runtime directory and ``settings.sandbox_ro_paths`` read-only, a private ``/tmp``, a minimal
``/proc`` and ``/dev``, two files of ``/etc`` (the loader cache, the time zone), and the task's
work directory writable at its own absolute path. Nothing else of the host exists inside: not the
database, the configuration, credentials, ``/root``, ``/home`` or other tasks' directories. It has
no network, its own PID, IPC and UTS namespaces, a new session, and dies with its parent.

The model never runs as root, so ``RLIMIT_NPROC`` bounds it (the kernel exempts uid 0):

* Service running as root: bwrap runs without a user namespace (so it may bind root-only paths,
  such as a Python under ``/root``) and ``setpriv`` switches to uid/gid :data:`SANDBOX_UID_BASE`
  plus the service's pid, with no groups, no capabilities and ``no_new_privs``. That uid belongs
  to this service process alone, so the process limit counts this model only. The work directory
  is handed to that uid for the run and given back afterwards.
* Service running as another user: bwrap makes a user namespace (uid 1000 inside, the service's
  uid outside); the kernel counts processes per user namespace, so the limit is per model too.

Why the bwrap command line looks the way it does (bubblewrap 0.8, found by trying as root):

* A user namespace made by root maps the model to kernel uid 0, which ``RLIMIT_NPROC`` exempts,
  hence no ``--unshare-user`` for root and ``setpriv`` instead.
* bwrap run as an unprivileged user cannot bind a path it cannot reach (it resolves sources,
  even ``--ro-bind-fd`` ones, as the caller), e.g. a Python installed under ``/root``: hence bwrap
  runs as root, keeping only ``CAP_SETUID``/``CAP_SETGID``/``CAP_SETPCAP`` for ``setpriv``.
* Without ``CAP_DAC_OVERRIDE`` bwrap cannot ``--chdir`` into a ``0700`` work directory owned by
  the model's uid: the runner changes directory itself, after the uid switch.
* bwrap creates missing parents of mount points ``0700``; ``--perms 0755 --dir`` makes them
  traversable for the unprivileged model. The root tmpfs is remounted read-only at the end.
* bwrap returns as soon as the model exits, while its children may live on for a moment: the
  sandbox's init (``--info-fd`` gives its pid) is killed and awaited after every run.

Isolation ``process`` (no bwrap, or chosen on purpose) keeps the clean environment, the limits,
the timeout and the process-group kill, but the model sees the host's file system and network as
the service's user sees them, and the process limit counts all of that user's processes (it does
not apply at all to root). For the length of a run the supervising process is a child
subreaper (``prctl``), so a process the model left in a session of its own comes back to it
when its parent dies, and is killed with the rest. ``auto`` uses bwrap when it works here and
warns loudly once if not.

The package, one concept per module:

* ``api``: the public functions (:func:`run_model`, :func:`sandbox_status`, ``sandbox_controls``);
* ``execute``: one run with a chosen isolation (command, environment, logs, work-dir ownership);
* ``filesystem``: the bwrap command line and the file system tree it builds;
* ``supervise``: starting, waiting, the timeout, and killing everything a model left;
* ``verdict``: :class:`ModelRun` and how an exit status and the runner's report are judged;
* ``probe``: whether bubblewrap works here (probed once);
* ``seccomp``: the system-call filter (no memfd, SysV shared memory or new user namespaces).
"""

from .api import run_model, sandbox_controls, sandbox_status
from .execute import SANDBOX_PATH, SANDBOX_UID_BASE
from .filesystem import NAMESPACE_ID
from .verdict import ModelRun

__all__ = [
    "NAMESPACE_ID",
    "SANDBOX_PATH",
    "SANDBOX_UID_BASE",
    "ModelRun",
    "run_model",
    "sandbox_controls",
    "sandbox_status",
]
