"""The classic Device Shadow, as AWS IoT documents its MQTT protocol (the rules, no MQTT here).

Per thing one document ``{"state": {"desired", "reported"}, "metadata", "version"}``. An
``update`` merges ``state.desired``/``state.reported`` (a null deletes a key, a null section
deletes the section), bumps ``version`` and stamps ``metadata`` per leaf; it is answered with
``update/accepted`` (the request's state, its metadata, the new version) and
``update/documents`` (previous and current), plus ``update/delta`` (the desired keys that differ
from reported) when the request touched ``desired`` and a difference remains. Refused with
``update/rejected`` and AWS's codes: 400 (not JSON, no ``state`` object, nested too deep), 409
(``version`` is not the current one), 413 (the state would exceed 8 KB). ``get`` answers the whole
document with its ``delta``, or 404; ``delete`` removes it. ``clientToken`` is echoed.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

MAX_STATE_BYTES = 8 * 1024
MAX_DEPTH = 6  # AWS: state objects nest at most 6 levels (desired/reported count as one)


@dataclass
class Shadow:
    desired: dict[str, Any] | None = None
    reported: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int = 0

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.desired is not None:
            out["desired"] = self.desired
        if self.reported is not None:
            out["reported"] = self.reported
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state(), "metadata": self.metadata, "version": self.version}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Shadow:
        state = doc.get("state") or {}
        return cls(state.get("desired"), state.get("reported"), doc.get("metadata") or {}, int(doc.get("version", 0)))


Reply = tuple[str, dict[str, Any]]  # (topic suffix, payload)


def _merge(base: dict[str, Any] | None, change: dict[str, Any]) -> dict[str, Any] | None:
    out = copy.deepcopy(base) if base else {}
    for key, value in change.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value) or {}
        else:
            out[key] = copy.deepcopy(value)
    return out or None


def _stamp(change: Any, now: int) -> Any:
    if isinstance(change, dict):
        return {k: _stamp(v, now) for k, v in change.items() if v is not None}
    return {"timestamp": now}


def delta(desired: dict[str, Any] | None, reported: dict[str, Any] | None) -> dict[str, Any]:
    """The desired keys whose value differs from reported (recursively for objects)."""
    out: dict[str, Any] = {}
    for key, want in (desired or {}).items():
        have = (reported or {}).get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            inner = delta(want, have)
            if inner:
                out[key] = inner
        elif want != have:
            out[key] = want
    return out


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((_depth(v) for v in value), default=0)
    return 0


def _error(code: int, message: str, now: int, token: Any) -> Reply:
    body: dict[str, Any] = {"code": code, "message": message, "timestamp": now}
    if token is not None:
        body["clientToken"] = token
    return "rejected", body


def _state_problem(state: dict[str, Any]) -> str | None:
    """Why an update's ``state`` node is refused (AWS's 400 messages), or None."""
    for section in ("desired", "reported"):
        if section in state and state[section] is not None and not isinstance(state[section], dict):
            return f"State node {section} must be an object"
    unknown = sorted(set(state) - {"desired", "reported"})
    if unknown:
        return f"State contains an invalid node: {unknown[0]!r}"
    if _depth(state) > MAX_DEPTH:
        return f"JSON contains too many levels of nesting; maximum is {MAX_DEPTH}"
    return None


def _applied(old: Shadow, state: dict[str, Any], now: int) -> Shadow:
    """The next version of ``old`` with ``state``'s sections merged in (a null section deletes it)."""
    new = Shadow(old.desired, old.reported, copy.deepcopy(old.metadata), old.version + 1)
    for section in ("desired", "reported"):
        if section not in state:
            continue
        change = state[section]
        if change is None:
            setattr(new, section, None)
            new.metadata.pop(section, None)
            continue
        setattr(new, section, _merge(getattr(new, section), change))
        new.metadata[section] = _merge(new.metadata.get(section), _stamp(change, now)) or {}
        if getattr(new, section) is None:
            new.metadata.pop(section, None)
    return new


class ShadowBook:
    def __init__(self, shadows: dict[str, Shadow] | None = None) -> None:
        self.shadows: dict[str, Shadow] = shadows or {}

    def update(self, thing: str, payload: bytes, now: int) -> list[Reply]:
        try:
            request = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            return [("update/rejected", _error(400, "Payload contains invalid json", now, None)[1])]
        token = request.get("clientToken") if isinstance(request, dict) else None

        def rejected(code: int, message: str) -> list[Reply]:
            suffix, body = _error(code, message, now, token)
            return [("update/" + suffix, body)]
        if not isinstance(request, dict) or not isinstance(request.get("state"), dict):
            return rejected(400, "Missing required node: state")
        state = request["state"]
        problem = _state_problem(state)
        if problem is not None:
            return rejected(400, problem)
        old = self.shadows.get(thing, Shadow())
        if "version" in request and request["version"] != old.version:
            return rejected(409, "Version conflict")
        new = _applied(old, state, now)
        if len(json.dumps(new.state(), separators=(",", ":")).encode()) > MAX_STATE_BYTES:
            return rejected(413, "The payload exceeds the maximum size allowed")
        self.shadows[thing] = new
        accepted: dict[str, Any] = {"state": state, "metadata": {k: _stamp(v, now) for k, v in state.items()
                                                                  if isinstance(v, dict)},
                                    "version": new.version, "timestamp": now}
        documents: dict[str, Any] = {"previous": old.to_dict() if old.version else None, "current": new.to_dict(),
                                     "timestamp": now}
        if token is not None:
            accepted["clientToken"] = documents["clientToken"] = token
        replies: list[Reply] = [("update/accepted", accepted), ("update/documents", documents)]
        diff = delta(new.desired, new.reported)
        if diff and "desired" in state:
            body: dict[str, Any] = {"version": new.version, "timestamp": now, "state": diff,
                                    "metadata": _stamp(diff, now)}
            if token is not None:
                body["clientToken"] = token
            replies.append(("update/delta", body))
        return replies

    def get(self, thing: str, payload: bytes, now: int) -> list[Reply]:
        token = _token(payload)
        shadow = self.shadows.get(thing)
        if shadow is None:
            suffix, body = _error(404, f"No shadow exists with name: '{thing}'", now, token)
            return [("get/" + suffix, body)]
        state = shadow.state()
        diff = delta(shadow.desired, shadow.reported)
        if diff:
            state["delta"] = diff
        body = {"state": state, "metadata": shadow.metadata, "version": shadow.version, "timestamp": now}
        if token is not None:
            body["clientToken"] = token
        return [("get/accepted", body)]

    def delete(self, thing: str, payload: bytes, now: int) -> list[Reply]:
        token = _token(payload)
        shadow = self.shadows.pop(thing, None)
        if shadow is None:
            suffix, body = _error(404, f"No shadow exists with name: '{thing}'", now, token)
            return [("delete/" + suffix, body)]
        body = {"version": shadow.version, "timestamp": now}
        if token is not None:
            body["clientToken"] = token
        return [("delete/accepted", body)]


def _token(payload: bytes) -> Any:
    try:
        doc = json.loads(payload) if payload else {}
    except (UnicodeDecodeError, ValueError):
        return None
    return doc.get("clientToken") if isinstance(doc, dict) else None
