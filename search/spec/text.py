"""Study specs (and other small documents) from JSON or YAML text, as plain data, safely.

One parser for the API and the CLI. What it refuses, each as a ValueError naming the field:
- YAML whose aliases (`*name`) expand past MAX_NODES values: a few hundred bytes of nested
  anchors expand to gigabytes once validated ("billion laughs"); the expanded size is
  counted while composing, before anything is expanded. Aliases as YAML writers emit them
  for repeated values (PyYAML's dump does) stay allowed;
- YAML tags that build objects (`!!python/...`): only the safe loader's plain data is built;
- nesting deeper than MAX_NESTING (the deepest spec is about 8 levels: spaces → space →
  depth → per-stage distribution → values), so no parser or validator recurses unboundedly;
- strings that are not UTF-8 (lone surrogates, which JSON escapes can write) or hold NUL
  (PostgreSQL text cannot store it): either would be accepted and then break every read.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import yaml

MAX_NESTING = 32
MAX_NODES = 100_000  # values in a document with its aliases expanded (a spec has < 1,000)


class TextError(ValueError):
    """A document that cannot be read as plain data; `field` names where, `reason` why."""

    def __init__(self, field_name: str, reason: str):
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a budget of nodes (aliases counted expanded) and of nesting."""

    def __init__(self, stream):
        super().__init__(stream)
        self._nesting = 0
        self._open: list[int] = []  # the expanded size of each node being composed so far
        self._sizes: dict[int, int] = {}  # id(node) -> its expanded size, once composed

    def compose_node(self, parent, index):
        """Compose one node; refuse recursive aliases, deep nesting and too many nodes."""
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:  # an alias of a node still open: it contains itself
                raise yaml.composer.ComposerError(None, None, "recursive alias", mark)
        else:
            self._nesting += 1
            self._open.append(0)
            try:
                if self._nesting > MAX_NESTING:
                    raise yaml.composer.ComposerError(
                        None, None, f"nested deeper than {MAX_NESTING} levels", mark
                    )
                node = super().compose_node(parent, index)
            finally:
                self._nesting -= 1
                size = 1 + self._open.pop()
            self._sizes[id(node)] = size
        if size > MAX_NODES:  # what the data would be with every alias expanded
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_NODES} values once aliases are expanded", mark
            )
        if self._open:
            self._open[-1] += size
        return node


def load_text(
    text: str, fmt: Literal["json", "yaml", "auto"] = "auto", field_name: str = "body"
) -> Any:
    """JSON or YAML text as plain data (auto: JSON first, then YAML, a superset)."""
    if fmt in ("json", "auto"):
        try:
            return check_data(json.loads(text), field_name)
        except json.JSONDecodeError as e:
            if fmt == "json":
                raise TextError(field_name, f"invalid JSON ({e.msg} at line {e.lineno})") from None
        except RecursionError:
            raise TextError(field_name, f"nested deeper than {MAX_NESTING} levels") from None
        except TextError:
            raise
        except ValueError as e:  # e.g. an integer of more than 4300 digits
            raise TextError(field_name, f"invalid JSON ({' '.join(str(e).split())})") from None
    try:
        data = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        reason = " ".join(str(e).split())
        raise TextError(field_name, f"invalid YAML ({reason})") from None
    except (RecursionError, ValueError) as e:
        raise TextError(field_name, f"invalid YAML ({' '.join(str(e).split())})") from None
    return check_data(data, field_name)


def check_data(data: Any, field_name: str = "body") -> Any:
    """`data` itself, once no part is nested too deep and every string is storable text."""
    stack: list[tuple[Any, tuple, int]] = [(data, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            _check_string(node, path, field_name)
            continue
        if not isinstance(node, dict | list | tuple):
            continue
        if depth > MAX_NESTING:
            raise TextError(_where(path, field_name), f"nested deeper than {MAX_NESTING} levels")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(key, str):
                _check_string(key, path, field_name)
            stack.append((value, (*path, key), depth + 1))
    return data


def _check_string(s: str, path: tuple, field_name: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise TextError(
            _where(path, field_name), "text is not valid UTF-8 (a lone surrogate)"
        ) from None
    if "\x00" in s:
        raise TextError(_where(path, field_name), "text may not contain NUL characters")


def _where(path: tuple, field_name: str) -> str:
    """The dotted path of a place in the document (the document itself: field_name)."""
    return ".".join(str(p) for p in path[:12]) or field_name
