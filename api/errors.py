"""One error formatter for the API and the CLI: any bad input as (field, reason) pairs.

pydantic errors carry a location (`spaces.0.depth`); our own validators and checks raise
ValueError("field: reason") or errors with `field`/`reason` attributes. A validator's
message that starts with a field path is placed under its model's location, and a
validation error raised inside a validator (a space resolving its DesignSpace) is unfolded
with its own locations, so every item names the field the user wrote.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

# a leading "field: " in a message: a dotted path without spaces (spaces.0.name, stages[1])
# or a command-line flag (--regnet)
_FIELD = re.compile(r"^(--)?[A-Za-z_][\w.\[\]-]*$")
# where FastAPI puts request parts; they are not part of the field's name
_PARTS = ("body", "query", "path", "header", "cookie")


def error_items(exc: BaseException) -> list[dict[str, str]]:
    """Field/reason pairs of a validation error (pydantic), a field error or a ValueError."""
    return [{**i, "field": i["field"] or "body"} for i in _items(exc)]


def _items(exc: BaseException) -> list[dict[str, str]]:
    if isinstance(exc, ValidationError) or _is_request_error(exc):
        items = [item for e in exc.errors() for item in _pydantic_items(e)]
        if items:
            return items
    field_name, reason = getattr(exc, "field", None), getattr(exc, "reason", None)
    if field_name and reason:
        return [{"field": str(field_name), "reason": str(reason)}]
    return [_split(" ".join(str(exc).split()) or type(exc).__name__, "")]


def one_line(exc: BaseException) -> str:
    """The reason for an exception as one line, `field: reason; field: reason` (a reason that
    names no field stands alone: the CLI has no request body)."""
    return "; ".join(
        f"{i['field']}: {i['reason']}" if i["field"] else i["reason"] for i in _items(exc)
    )


def _is_request_error(exc: BaseException) -> bool:
    from fastapi.exceptions import RequestValidationError

    return isinstance(exc, RequestValidationError)


def _pydantic_items(error: dict) -> list[dict[str, str]]:
    loc = [str(x) for x in error.get("loc", ())]
    if loc and loc[0] in _PARTS:
        loc = loc[1:]
    inner = (error.get("ctx") or {}).get("error")
    if isinstance(inner, ValidationError):  # raised inside a validator: keep its locations
        return [{**item, "field": _join(loc, item["field"])} for item in _items(inner)]
    if isinstance(inner, BaseException):
        item = _split(" ".join(str(inner).split()), "")
        if getattr(inner, "field", None) and getattr(inner, "reason", None):
            item = {"field": str(inner.field), "reason": str(inner.reason)}
        return [{"field": _join(loc, item["field"]), "reason": item["reason"]}]
    return [{"field": ".".join(loc), "reason": str(error.get("msg"))}]


def _join(loc: list[str], head: str) -> str:
    """A validator's field under its location; a head that repeats the location's last part
    (a field validator naming its own field) is not repeated."""
    if loc and head and re.match(rf"^{re.escape(loc[-1])}([.\[]|$)", head):
        loc = loc[:-1]
    return ".".join([*loc, head] if head else loc)


def _split(text: str, default: str) -> dict[str, str]:
    """'field: reason' → its parts when the head is a field path, else (default, text)."""
    head, sep, tail = text.partition(": ")
    if sep and _FIELD.match(head):
        return {"field": head, "reason": tail}
    return {"field": default, "reason": text}
