"""proxymod's per-model log: the console (stdout) plus a time-stamped file beside the outputs.

As in the original, every :func:`make_log` adds a new file and console handler to the logger of
that model name: the original's cache (:data:`loggers`) stores each logger under the key
``'name'``, so it never finds one again. A model that builds two ``Prox`` of one name without
closing the first therefore writes the second's lines twice, into both files, as it would there.
The logger propagates to the root logger, also as there.
"""

import datetime
import logging
import sys

#: The layout of every log line, on the console and in the file.
_LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"

#: The time stamp in a log file's name: ``<model_name>_<YYYY-MM-DD_HHhMMmSSs>.log``.
_LOG_FILE_TIME_FORMAT = "%Y-%m-%d_%Hh%Mm%Ss"

#: The original's logger cache, kept as it behaves (see the module's docstring).
loggers: dict[str, logging.Logger] = {}


def make_log(out_dir: object, model_name: object) -> logging.Logger:
    """The model's logger, with a new handler to stdout and one to a new file in ``out_dir``."""
    log = logging.getLogger(f"proxymod_logger_{model_name}")
    log.setLevel(logging.INFO)
    stamp = datetime.datetime.now().strftime(_LOG_FILE_TIME_FORMAT)
    file_handler = logging.FileHandler(f"{out_dir}/{model_name}_{stamp}.log")
    console = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(_LOG_FORMAT)
    file_handler.setFormatter(formatter)
    console.setFormatter(formatter)
    log.addHandler(file_handler)
    log.addHandler(console)
    loggers["name"] = log  # sic: the original's key, so its cache never hits
    return log


def kill_log(log: logging.Logger) -> None:
    """Remove, flush and close every handler of ``log``."""
    for handler in log.handlers[:]:
        log.removeHandler(handler)
        handler.flush()
        handler.close()
