"""``report.md``: what a rejected or failed task was asked, what happened, and what to fix.

The report is written for the scientist who uploaded the dataset and finds it in Pacifica next to
their upload (``Transactions._id`` = their transaction, ``proxymod.result`` = ``rejected`` or
``failed``). It says what was asked (the configurations, models and inputs of the upload), at
which stage the task ended and why, every problem with its fix, and each model's outcome with the
end of its logs (the traceback names the model file and line). Everything that came from the
event or a model is shown inside Markdown code spans or fenced blocks, so no text of theirs is
read as Markdown (links, images, HTML).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..events import Event, Upload
from ..modellog import ModelLog

REPORT_NAME = "report.md"

#: The most characters of one log shown in the report (its end; the whole log is in the tree).
LOG_TAIL_CHARS = 4000
#: The most problems listed (the rest are counted).
MAX_PROBLEMS = 100

_STAGE_WORDS = {
    "validate": "checking the request (its proxymod key/values and Files)",
    "download": "downloading the inputs and models",
    "model": "running the models",
    "upload": "uploading the results",
    "internal": "inside the dispatcher",
}


@dataclass(frozen=True)
class ModelOutcome:
    """One model run as the report shows it."""

    model: str
    outcome: str  # "ok" | "error" | "timeout" | "limit" | "killed"
    reason: str | None
    exit_code: int | None
    duration_seconds: float | None
    limit: str | None = None
    stdout_tail: str | None = None
    stderr_tail: str | None = None

    @classmethod
    def from_json(cls, run: Mapping[str, Any], logs: Mapping[tuple[str, str], str]) -> ModelOutcome:
        """From ``ModelRun.to_json()`` and the model logs ``{(model, stream): text}``."""
        model = str(run.get("model"))
        return cls(
            model=model,
            outcome=str(run.get("outcome")),
            reason=run.get("reason"),
            exit_code=run.get("exit_code"),
            duration_seconds=run.get("duration_seconds"),
            limit=run.get("limit"),
            stdout_tail=logs.get((model, "stdout")),
            stderr_tail=logs.get((model, "stderr")),
        )


@dataclass(frozen=True)
class ReportFacts:
    """Everything a report says."""

    task_id: str
    state: str  # "rejected" | "failed"
    stage: str  # a states.Stage value
    reason: str
    problems: Sequence[str] = ()
    event_source: str = ""
    event_id: str = ""
    transaction_id: int | None = None
    submitter: int | str | None = None
    project: int | str | None = None
    instrument: int | str | None = None
    key_values: Mapping[str, str] = field(default_factory=dict)
    files: Sequence[str] = ()
    runs: Sequence[ModelOutcome] = ()
    delivery_note: str | None = None  # e.g. why the results themselves could not be uploaded


def render(facts: ReportFacts) -> str:
    """The Markdown text of the report."""
    lines = [
        "# proxymod: your upload was rejected"
        if facts.state == "rejected"
        else "# proxymod: the run of your upload failed",
        "",
        f"- **Input transaction:** {_code(facts.transaction_id)}",
        f"- **Submitter / project / instrument:** {_code(facts.submitter)} / "
        f"{_code(facts.project)} / {_code(facts.instrument)}",
        f"- **Dispatcher task:** {_code(facts.task_id)} (event {_code(facts.event_id)} from "
        f"{_code(facts.event_source)})",
        f"- **Ended while:** {_STAGE_WORDS.get(facts.stage, facts.stage)} "
        f"(stage {_code(facts.stage)})",
        "",
        "## What happened",
        "",
    ]
    if facts.state == "rejected":
        count = len(facts.problems) or 1
        lines += [
            f"The request was refused before anything ran: {count} "
            f"problem{'s' if count != 1 else ''}, listed below.",
            "",
        ]
    elif facts.stage == "model" and facts.runs:
        failed = sum(run.outcome != "ok" for run in facts.runs)
        lines += [
            f"{failed} of {len(facts.runs)} model runs failed; the outputs, logs and plots "
            "of every run are beside this report.",
            "",
            _fenced(facts.reason),
            "",
        ]
    else:
        lines += [_fenced(facts.reason), ""]
    if facts.delivery_note:
        lines += [_fenced(facts.delivery_note), ""]
    lines += ["## What to fix", ""]
    lines += _problems(facts)
    lines += ["", "## What was asked", ""]
    lines += _asked(facts)
    if facts.runs:
        lines += ["", "## The models' outcomes", ""]
        lines += _runs(facts.runs)
    lines += [
        "",
        "---",
        "The files beside this report: `manifest.json` (provenance), `ro-crate-metadata.json` "
        "(the same as an RO-Crate), `logs/` (each model's output), and whatever the models wrote.",
        "",
    ]
    return "\n".join(lines)


def write_report(directory: Path, facts: ReportFacts) -> Path:
    """Write ``report.md`` into ``directory``, replacing (never writing through) what is there."""
    path = directory / REPORT_NAME
    if path.is_symlink() or path.exists():
        if path.is_dir() and not path.is_symlink():
            raise OSError(f"{path} is a directory")
        path.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(path, flags, 0o644), "w", encoding="utf-8") as out:
        out.write(render(facts))
    return path


def fix_for(run: ModelOutcome) -> str:
    """What to do about one model's failure."""
    if run.outcome == "timeout":
        return "make the model finish sooner (or lower `runtime`): it ran past the time limit"
    if run.outcome == "limit":
        return (
            f"the model went over the {run.limit or 'resource'} limit: use less of it, "
            "or ask the operator whether the limit can be raised"
        )
    if run.reason and "You raised an error on purpose" in run.reason:
        return "a configuration sets `[PROJECT] failure = 1`, which makes proxymod fail on purpose"
    if run.outcome == "killed":
        return "the model was stopped from outside (a signal): run it again; if it recurs, ask"
    return "fix the model code at the file and line shown in its traceback below"


_FRAME = re.compile(
    r'File "(?:[^"\n]*/)?models/(?P<file>[^"/\n]+\.py)", line (?P<line>\d+), in (?P<fn>\S+)'
)


def user_frame(traceback_text: str, model: str) -> str | None:
    """The innermost frame of the model's own files in a traceback: file, line and function."""
    frames = list(_FRAME.finditer(traceback_text))
    if not frames:
        return None
    last = frames[-1]
    return f"{_code('models/' + last['file'])}, line {last['line']}, in {_code(last['fn'])}"


def _problems(facts: ReportFacts) -> list[str]:
    lines: list[str] = []
    shown = [f"- {_line(problem)}" for problem in list(facts.problems)[:MAX_PROBLEMS]]
    if len(facts.problems) > len(shown):
        shown.append(f"- ... and {len(facts.problems) - len(shown)} more problems")
    failed_runs = [run for run in facts.runs if run.outcome != "ok"]
    if shown and not (facts.stage == "model" and failed_runs):
        lines += [_fenced("\n".join(shown)), ""]
    for run in failed_runs:
        where = user_frame(run.stderr_tail or "", run.model)
        at = f" (at {where})" if where else ""
        lines += [f"- model {_code(run.model)}{at}: {fix_for(run)}.", ""]
        if run.reason:
            lines += [_fenced(run.reason), ""]
    if facts.stage in ("download", "upload", "internal"):
        lines.append(
            "- Probably nothing in your upload: the dispatcher could not complete its part. "
            "The operator can retry the task (`POST /retry/<task>`); its id is above."
        )
    elif not lines:
        lines += [_fenced(facts.reason)]
    return lines


def _asked(facts: ReportFacts) -> list[str]:
    asked = {k: v for k, v in facts.key_values.items() if k.startswith("proxymod.")}
    lines = ["The upload's proxymod key/values:", ""]
    if asked:
        lines += ["```", *(f"{_line(k)} = {_line(v)}" for k, v in sorted(asked.items())), "```"]
    else:
        lines.append("(none)")
    lines += ["", "Its files:", ""]
    if facts.files:
        lines += ["```", *(_line(path) for path in facts.files), "```"]
    else:
        lines.append("(none)")
    return lines


def _runs(runs: Sequence[ModelOutcome]) -> list[str]:
    lines = ["| model | outcome | exit status | seconds |", "|---|---|---|---|"]
    for run in runs:
        seconds = "" if run.duration_seconds is None else f"{run.duration_seconds:g}"
        exit_code = "" if run.exit_code is None else str(run.exit_code)
        lines.append(f"| {_code(run.model)} | {run.outcome} | {exit_code} | {seconds} |")
    for run in runs:
        lines += ["", f"### {_code(run.model)}: {run.outcome}", ""]
        if run.reason:
            lines += [_fenced(run.reason), ""]
        for stream, text in (("stderr", run.stderr_tail), ("stdout", run.stdout_tail)):
            if text:
                lines += [
                    f"The end of `logs/{_line(run.model)}.{stream}.log`:",
                    "",
                    _fenced(_tail(text)),
                    "",
                ]
    return lines


def _tail(text: str) -> str:
    return text if len(text) <= LOG_TAIL_CHARS else "..." + text[-LOG_TAIL_CHARS:]


def _line(value: object) -> str:
    """``value`` on one line, without control characters."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", str(value))


def _code(value: object) -> str:
    """``value`` as an inline code span (Markdown reads nothing inside it)."""
    text = _line(value)
    ticks = max((len(run) for run in re.findall(r"`+", text)), default=0) + 1
    fence = "`" * ticks
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _fenced(text: str) -> str:
    """``text`` as a fenced block that no line of it can close."""
    body = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", text.rstrip("\n"))
    longest = max((len(run) for run in re.findall(r"`{3,}|~{3,}", body)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def facts_for(
    task_id: str,
    event: Event,
    upload: Upload | None,
    *,
    state: str,
    stage: str,
    reason: str,
    problems: Sequence[str] = (),
    runs: Sequence[Mapping[str, Any]] = (),
    logs: Sequence[ModelLog] = (),
    delivery_note: str | None = None,
) -> ReportFacts:
    """The report of a task from its event, upload (None when unreadable) and what happened."""
    texts = {(log.model, log.stream): log.text for log in logs}
    return ReportFacts(
        task_id=task_id,
        state=state,
        stage=stage,
        reason=reason,
        problems=tuple(problems),
        event_source=event.source,
        event_id=event.id,
        transaction_id=upload.transaction_id if upload else None,
        submitter=upload.submitter if upload else None,
        project=upload.project if upload else None,
        instrument=upload.instrument if upload else None,
        key_values=dict(upload.key_values) if upload else {},
        files=tuple(entry.path for entry in upload.files) if upload else (),
        runs=tuple(ModelOutcome.from_json(run, texts) for run in runs),
        delivery_note=delivery_note,
    )
