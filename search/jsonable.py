"""The one JSON sanitiser: any result of ours as plain JSON data (NaN and infinities as null).

JSON has no NaN or Infinity (browsers' JSON.parse refuses them), so every number that is
not finite becomes null; numpy values, pydantic models, dataclasses and datetimes become
their plain JSON form. `Ready` marks a list already made of plain values (long float
series built once by their producer), which is not walked again.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime
from typing import Any

import numpy as np


class Ready(list):
    """A list already JSON-safe: json_safe hands it back as it is."""


def json_safe(obj: Any) -> Any:
    """A JSON-safe copy of obj: NaN/inf → None, numpy → Python, models and dates → plain."""
    if isinstance(obj, Ready) or obj is None or isinstance(obj, str | bool):
        return obj
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if hasattr(obj, "model_dump"):  # a pydantic model
        return json_safe(obj.model_dump(mode="json"))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj))
    return obj
