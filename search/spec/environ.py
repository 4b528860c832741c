"""Numbers a user sets in the environment ($DSE_*), read with an error that names the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping


def env_number(name: str, kind, what: str, default, env: Mapping[str, str] | None = None):
    """$name read as `kind` (float or int), `default` when unset or empty; a ValueError naming it."""
    raw = (os.environ if env is None else env).get(name)
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}: expected {what}, got {raw!r}") from None
