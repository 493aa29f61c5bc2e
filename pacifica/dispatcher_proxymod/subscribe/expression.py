"""The subscription's jsonpath2 expression: checked as Notifications parses it, or narrowed."""

from __future__ import annotations

from collections.abc import Mapping

from .subscription import SubscriptionError, one_line


def check_expression(expression: str) -> None:
    """Raise SubscriptionError unless jsonpath2 (what Notifications uses) parses ``expression``."""
    from jsonpath2.path import Path

    if not expression.strip():
        raise SubscriptionError("the subscription expression is empty")
    try:
        Path.parse_str(expression)
    except Exception as exc:  # antlr raises assorted errors for bad input
        detail = one_line(str(exc)) or type(exc).__name__
        raise SubscriptionError(f"jsonpath2 cannot parse the expression: {detail}") from None


def narrow_expression(expression: str, required: Mapping[str, str]) -> str:
    """``expression`` that also requires each TransactionKeyValue ``key = value`` in ``required``.

    For an operator who wants only some uploads (a site, a campaign), and for tests that share
    a Notifications with others. ``expression`` must be a filter ``$[?( ... )]`` as ours is.
    """
    if not required:
        return expression
    body = expression.rstrip()
    if not (body.startswith("$[?(") and body.endswith(")]")):
        raise SubscriptionError("only an expression of the form $[?( ... )] can be narrowed")
    conditions = []
    for key, value in required.items():
        conditions.append(
            '  and $["data"][*][?(@["destinationTable"] = "TransactionKeyValue" and '
            f'@["key"] = {_literal(key)} and @["value"] = {_literal(value)})]'
        )
    return body[: -len(")]")].rstrip() + "\n" + "\n".join(conditions) + "\n)]\n"


def _literal(text: str) -> str:
    """A jsonpath2 string literal (there are no escapes, so some characters cannot be said)."""
    if not text or any(char in '"\\' or ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise SubscriptionError(
            f"{text!r} cannot be matched: it is empty or holds a quote, backslash or control "
            "character"
        )
    return f'"{text}"'
