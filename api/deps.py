"""What the routes are handed: the store, the front's limits, the token check, error bodies."""

from __future__ import annotations

import hmac
import json
import math
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

# Safe defaults: a spec posted over HTTP cannot ask for more than this unless the
# operator raises the limits (DSE_MAX_* environment variables or create_app(limits=...)).
DEFAULT_MAX_BODY = 256 * 1024


class SpecLimitError(ValueError):
    """A study spec exceeds a limit of this server; names the field and the limit."""

    def __init__(self, field_name: str, reason: str):
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


@dataclass(frozen=True)
class SpecLimits:
    """What one posted study may ask for, and where its data may live."""

    max_samples: int = 500
    max_epochs: int = 100
    max_spaces: int = 12
    max_fidelities: int = 5
    data_dirs: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SpecLimits:
        """SpecLimits from DSE_MAX_SAMPLES, DSE_MAX_EPOCHS, DSE_MAX_SPACES, DSE_DATA_DIRS."""
        env = os.environ if env is None else env
        base = cls()

        def num(name: str, default: int) -> int:
            raw = env.get(name)
            if raw in (None, ""):
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{name}: expected an integer, got {raw!r}") from None
            if value < 1:
                raise ValueError(f"{name}: must be at least 1, got {value}")
            return value

        dirs = tuple(d for d in env.get("DSE_DATA_DIRS", "").split(os.pathsep) if d.strip())
        return cls(
            max_samples=num("DSE_MAX_SAMPLES", base.max_samples),
            max_epochs=num("DSE_MAX_EPOCHS", base.max_epochs),
            max_spaces=num("DSE_MAX_SPACES", base.max_spaces),
            max_fidelities=num("DSE_MAX_FIDELITIES", base.max_fidelities),
            data_dirs=dirs,
        )

    def check(self, spec: Any) -> None:
        """Raise SpecLimitError naming the field if the study spec exceeds a limit."""
        if spec.samples > self.max_samples:
            raise SpecLimitError(
                "samples", f"{spec.samples} exceeds this server's limit of {self.max_samples}"
            )
        if len(spec.spaces) > self.max_spaces:
            raise SpecLimitError(
                "spaces", f"{len(spec.spaces)} spaces exceed the limit of {self.max_spaces}"
            )
        fidelities = list(spec.fidelities)
        if len(fidelities) > self.max_fidelities:
            raise SpecLimitError(
                "fidelities",
                f"{len(fidelities)} levels exceed the limit of {self.max_fidelities}",
            )
        for i, epochs in enumerate(fidelities):
            if epochs > self.max_epochs:
                raise SpecLimitError(
                    f"fidelities.{i}", f"{epochs} epochs exceed the limit of {self.max_epochs}"
                )
        self.check_root(spec.dataset.root)

    def check_root(self, root: str | None) -> None:
        """A dataset root must resolve inside one of the configured data directories."""
        if root is None:
            return
        if not self.data_dirs:
            raise SpecLimitError(
                "dataset.root",
                "this server allows no dataset roots (the operator sets DSE_DATA_DIRS)",
            )
        # resolve() follows symlinks and '..', so a root cannot climb out of its directory
        path = Path(root).expanduser().resolve()
        for allowed in self.data_dirs:
            base = Path(allowed).expanduser().resolve()
            if path == base or base in path.parents:
                return
        raise SpecLimitError(
            "dataset.root", f"{root!r} is not inside an allowed data directory (DSE_DATA_DIRS)"
        )


def get_store(request: Request):
    """The study store of this app (one per process, shared by all requests)."""
    return request.app.state.store


def get_limits(request: Request) -> SpecLimits:
    """The spec limits of this app."""
    return request.app.state.limits


def require_token(request: Request) -> None:
    """Mutating requests need `Authorization: Bearer <DSE_TOKEN>` when a token is set."""
    token = request.app.state.token
    if not token:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise HTTPException(
            status_code=401,
            detail="authorization: a bearer token is required for this request",
            headers={"WWW-Authenticate": "Bearer"},
        )


def not_found(what: str, ident: Any) -> HTTPException:
    """A 404 naming what was looked for."""
    return HTTPException(status_code=404, detail=f"{what}: no {what} with id {ident}")


def error_items(exc: BaseException) -> list[dict[str, str]]:
    """Field/reason pairs of a validation error (pydantic) or a ValueError."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            items = []
            for e in exc.errors():
                loc = [str(x) for x in e.get("loc", ()) if x not in ("body",)]
                items.append({"field": ".".join(loc) or "body", "reason": str(e.get("msg"))})
            if items:
                return items
        except Exception:  # an errors() that is not pydantic's: fall back to the text
            pass
    field_name = getattr(exc, "field", None)
    reason = getattr(exc, "reason", None)
    if field_name and reason:
        return [{"field": str(field_name), "reason": str(reason)}]
    text = " ".join(str(exc).split()) or type(exc).__name__
    head, sep, tail = text.partition(": ")
    if sep and " " not in head:
        return [{"field": head, "reason": tail}]
    return [{"field": "body", "reason": text}]


YAML_TYPES = ("application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml")


def parse_spec_body(raw: bytes, content_type: str | None) -> dict:
    """A posted study spec as a dict: JSON, or YAML by content type (safe loader only)."""
    kind = (content_type or "application/json").split(";")[0].strip().lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("body: not UTF-8 text") from None
    if not text.strip():
        raise ValueError("body: empty; expected a study spec (JSON or YAML)")
    if kind in YAML_TYPES:
        import yaml

        try:
            # safe_load builds only plain data: tags such as !!python/object are refused,
            # so no part of a spec is ever executed
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            reason = " ".join(str(e).split())
            raise ValueError(f"body: invalid YAML ({reason})") from None
    elif kind == "application/json" or kind.endswith("+json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"body: invalid JSON ({e.msg} at line {e.lineno})") from None
    else:
        raise UnsupportedMediaType(kind)
    if not isinstance(data, dict):
        raise ValueError(f"body: expected a mapping (the study spec), got {type(data).__name__}")
    return data


class UnsupportedMediaType(ValueError):
    """The body's content type is neither JSON nor YAML."""

    def __init__(self, kind: str):
        super().__init__(f"content-type: {kind!r} is not supported; use JSON or YAML")
        self.field = "content-type"
        self.reason = f"{kind!r} is not supported; use application/json or application/x-yaml"


def json_safe(obj):
    """JSON-safe copy: NaN and infinities become null (browsers' JSON.parse refuses them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "model_dump"):
        return json_safe(obj.model_dump(mode="json"))
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        return json_safe(obj.item())
    return obj


class ResultsCache:
    """Serialised study results per (study, fidelity, normalisation), refreshed in the background.

    The analysis of a large study takes about a second (bootstraps, KS tests); a page polls
    every second. So: the first request computes and waits; once a version is cached, a newer
    store version is computed by one background thread while requests keep getting the last
    answer (with its own ETag) for up to `wait` seconds; the page picks the new one up at its
    next poll. Polls never queue behind the analysis and never run it twice at once.
    """

    def __init__(self, compute=None, wait: float = 0.1, size: int = 64):
        self._compute = compute
        self.wait = wait
        self.size = size
        self._entries: dict[tuple, tuple[str, str, bytes]] = {}  # key -> (version, etag, body)
        self._running: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    def _results(self, store, study_id, fidelity, normalize, bins=None, c_range=None) -> bytes:
        compute = self._compute
        if compute is None:
            from search.results import results_for as compute
        extra = {"bins": bins, "c_range": c_range} if bins is not None or c_range else {}
        body = compute(store, study_id, fidelity, normalize, **extra)
        return json.dumps(json_safe(body), separators=(",", ":"), allow_nan=False).encode()

    def _refresh(self, key, store, version: str) -> None:
        study_id, fidelity, normalize, bins, c_range = key
        try:
            body = self._results(store, study_id, fidelity, normalize, bins, c_range)
            norm = "-".join(f"{v:g}" if isinstance(v, float) else str(v) for v in key[2:4])
            norm += "".join(f"-{v:g}" for v in c_range or ())
            etag = f'"{version}-{fidelity}-{norm}"'
            with self._lock:
                self._entries[key] = (version, etag, body)
                while len(self._entries) > self.size:
                    self._entries.pop(next(iter(self._entries)))
        finally:
            with self._lock:
                self._running.pop(key).set()

    def get(
        self, store, study_id: int, fidelity, normalize, bins=None, c_range=None
    ) -> tuple[str, bytes]:
        """(ETag, JSON bytes) of the newest results available within `wait` seconds."""
        key = (study_id, fidelity, normalize, bins, tuple(c_range) if c_range else None)
        version = str(store.version(study_id))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                return entry[1], entry[2]
            done = self._running.get(key)
            owner = done is None
            if owner:
                done = self._running[key] = threading.Event()
        if entry is None:  # nothing to show yet: compute (or wait for the one computing)
            if owner:
                self._refresh(key, store, version)  # errors reach the caller
            else:
                done.wait()
                if key not in self._entries:  # that computation failed: try it here
                    return self.get(store, study_id, fidelity, normalize, bins, c_range)
        else:
            if owner:
                threading.Thread(
                    target=self._refresh_quietly, args=(key, store, version), daemon=True
                ).start()
            done.wait(self.wait)
        with self._lock:
            latest = self._entries.get(key, entry)
        return latest[1], latest[2]

    def _refresh_quietly(self, key, store, version: str) -> None:
        try:
            self._refresh(key, store, version)
        except Exception:  # a failed background refresh keeps the last answer; next poll retries
            pass
