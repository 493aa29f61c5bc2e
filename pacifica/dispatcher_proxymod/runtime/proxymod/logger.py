"""proxymod's per-model log: the console (stdout) plus a time-stamped file beside the outputs."""

from __future__ import annotations

import datetime
import logging
import os
import sys

#: The layout of every log line, on the console and in the file.
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"

#: The time stamp in a log file's name: ``<model_name>_<YYYY-MM-DD_HHhMMmSSs>.log``.
LOG_FILE_TIME_FORMAT = "%Y-%m-%d_%Hh%Mm%Ss"


def logger_name(model_name: str) -> str:
    """The name of the logger of the model ``model_name``."""
    return f"proxymod_logger_{model_name}"


def make_log(out_dir: str, model_name: str) -> logging.Logger:
    """Return the model's logger, writing to stdout and to a new log file in ``out_dir``.

    Handlers left behind by an earlier model of the same name that was never closed are removed
    first, so no line is written twice. The logger does not propagate to the root logger, for the
    same reason (a model that configures logging itself would otherwise print every line twice).
    """
    log = logging.getLogger(logger_name(model_name))
    kill_log(log)
    log.setLevel(logging.INFO)
    log.propagate = False

    stamp = datetime.datetime.now().strftime(LOG_FILE_TIME_FORMAT)
    log_file = os.path.join(out_dir, f"{model_name}_{stamp}.log")
    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [
        logging.FileHandler(log_file, encoding="utf-8"),
        logging.StreamHandler(sys.stdout),
    ]
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    return log


def kill_log(log: logging.Logger) -> None:
    """Close and remove every handler of ``log``."""
    for handler in list(log.handlers):
        handler.close()
        log.removeHandler(handler)
