"""report.md (proxymod/report.py): what a rejected or failed upload was asked, and what to fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pacifica.dispatcher_proxymod.proxymod import report
from pacifica.dispatcher_proxymod.proxymod.report import ModelOutcome, ReportFacts

TRACEBACK = """Traceback (most recent call last):
  File "/opt/runtime/run_model.py", line 192, in main
    target(*[str(path) for path in options.ini_paths])
  File "/srv/task/files/models/broken.py", line 7, in broken
    helper(config)
  File "/srv/task/files/models/broken.py", line 3, in helper
    raise KeyError('value')
KeyError: 'value'
"""


def _rejected(*problems: str) -> ReportFacts:
    return ReportFacts(
        task_id="task-1",
        state="rejected",
        stage="validate",
        reason=problems[0],
        problems=problems,
        event_source="http://metadata.pacifica.org/transactions?_id=1101",
        event_id="ev-1",
        transaction_id=1101,
        submitter=10,
        project="1234a",
        instrument=54,
        key_values={"proxymod.config_1.PROJECT.runtme": "0", "other.key": "x"},
        files=("inputs/in_file_one.csv", "models/broken.py"),
    )


def _failed(*runs: ModelOutcome) -> ReportFacts:
    return ReportFacts(
        task_id="task-2",
        state="failed",
        stage="model",
        reason="model broken: raised KeyError: 'value'",
        problems=["model broken: raised KeyError: 'value'"],
        transaction_id=1101,
        runs=runs,
    )


def _fences_balanced(text: str) -> bool:
    """Every fenced block is closed by a fence of its own length."""
    opened: str | None = None
    for line in text.splitlines():
        match = re.match(r"^(`{3,})(text)?$", line)
        if not match:
            continue
        if opened is None:
            opened = match[1]
        elif match[1] == opened and not match[2]:
            opened = None
    return opened is None


def test_a_rejection_lists_every_problem_and_what_was_asked() -> None:
    text = report.render(
        _rejected(
            "`proxymod.config_1.PROJECT.runtme`: unknown key; did you mean `runtime`?",
            "`proxymod.config_1.PROJECT.runtime`: missing",
        )
    )
    assert text.startswith("# proxymod: your upload was rejected\n")
    assert "refused before anything ran: 2 problems" in text
    assert "- `proxymod.config_1.PROJECT.runtme`: unknown key; did you mean `runtime`?\n" in text
    assert "- `proxymod.config_1.PROJECT.runtime`: missing\n" in text
    assert "proxymod.config_1.PROJECT.runtme = 0" in text
    assert "other.key" not in text  # only what was asked of proxymod
    assert "models/broken.py" in text
    assert "(stage `validate`)" in text
    assert "## The models' outcomes" not in text  # nothing ran
    assert _fences_balanced(text)


def test_a_model_failure_names_the_file_and_line_and_shows_the_logs() -> None:
    broken = ModelOutcome(
        "broken", "error", "model broken: raised KeyError: 'value'", 101, 0.25,
        stdout_tail="starting\n", stderr_tail=TRACEBACK,
    )  # fmt: skip
    fine = ModelOutcome("fine", "ok", None, 0, 0.5)
    text = report.render(_failed(fine, broken))
    assert text.startswith("# proxymod: the run of your upload failed\n")
    assert "1 of 2 model runs failed" in text
    assert "model `broken` (at `models/broken.py`, line 3, in `helper`): fix the model" in text
    assert "| `broken` | error | 101 | 0.25 |" in text
    assert "| `fine` | ok | 0 | 0.5 |" in text
    assert "The end of `logs/broken.stderr.log`:" in text
    assert "KeyError: 'value'" in text
    assert "The end of `logs/broken.stdout.log`:" in text
    assert _fences_balanced(text)


@pytest.mark.parametrize(
    ("outcome", "limit", "reason", "words"),
    [
        ("timeout", None, "model m: timed out after 5 s", "time limit"),
        ("limit", "memory", "model m: memory limit", "over the memory limit"),
        ("killed", None, "model m: killed by SIGKILL", "stopped from outside"),
        ("error", None, "model m: RuntimeError: You raised an error on purpose.", "failure = 1"),
    ],
)  # fmt: skip
def test_each_kind_of_model_failure_has_its_fix(
    outcome: str, limit: str | None, reason: str, words: str
) -> None:
    run = ModelOutcome("m", outcome, reason, None, 5.0, limit=limit)
    assert words in report.fix_for(run)
    assert words in report.render(_failed(run))


def test_a_failure_of_the_dispatcher_says_so() -> None:
    facts = ReportFacts(
        task_id="t", state="failed", stage="upload",
        reason="gave up after 6 attempts: Ingest answered 503",
    )  # fmt: skip
    text = report.render(facts)
    assert "Probably nothing in your upload" in text
    assert "gave up after 6 attempts: Ingest answered 503" in text
    assert "(stage `upload`)" in text


def test_text_from_the_event_and_the_model_cannot_become_markdown() -> None:
    hostile = "```\n# forged heading\n<script>alert(1)</script> [x](javascript:alert(1))"
    broken = ModelOutcome("m", "error", "model m: raised", 101, 1.0, stderr_tail="````\n" + hostile)
    facts = _rejected(hostile, "a\x1b[31mred\x07 problem")
    text = report.render(facts) + report.render(_failed(broken))
    assert "\x1b" not in text and "\x07" not in text
    assert _fences_balanced(report.render(facts))
    assert _fences_balanced(report.render(_failed(broken)))
    # the heading stays inside a fence: no line of the report is a forged heading
    for rendered in (report.render(facts), report.render(_failed(broken))):
        inside = False
        fence = ""
        for line in rendered.splitlines():
            match = re.match(r"^(`{3,})", line)
            if match and not inside:
                inside, fence = True, match[1]
            elif inside and line == fence:
                inside = False
            elif not inside:
                assert line != "# forged heading"
    assert (
        "`` ```"
        not in report.render(facts).split("## What was asked")[0].split("## What to fix")[0]
    )


def test_values_in_code_spans_keep_their_backticks() -> None:
    facts = _rejected("p")
    facts = ReportFacts(**{**facts.__dict__, "event_id": "a`b", "submitter": "`x`"})
    text = report.render(facts)
    assert "``a`b``" in text
    assert "`` `x` ``" in text


def test_write_report_replaces_a_planted_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("keep me")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / report.REPORT_NAME).symlink_to(outside)
    path = report.write_report(tree, _rejected("p"))
    assert outside.read_text() == "keep me"
    assert not path.is_symlink() and path.read_text().startswith("# proxymod")


def test_long_logs_show_their_end() -> None:
    long = "x" * 10 + "y" * report.LOG_TAIL_CHARS
    run = ModelOutcome("m", "error", "model m: raised", 101, 1.0, stderr_tail=long)
    text = report.render(_failed(run))
    assert "...yyy" in text and "xxx" not in text


def test_user_frame_is_the_innermost_model_frame() -> None:
    assert report.user_frame(TRACEBACK, "broken") == "`models/broken.py`, line 3, in `helper`"
    relative = 'Traceback (most recent call last):\n  File "models/m.py", line 9, in m\nKeyError\n'
    assert report.user_frame(relative, "m") == "`models/m.py`, line 9, in `m`"
    assert report.user_frame("no traceback here", "broken") is None
