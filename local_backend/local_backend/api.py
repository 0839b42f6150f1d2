"""The backend's HTTP API (FastAPI): registration as the operations guide describes it, and the
events the EventCommandService dispatches; plus read-only views of what was ingested.

    POST /api/vens/        {"name", "status", "location": {"lat", "lon"}, "registrationId"} -> 201 | 409
    GET  /api/vens/        registered VENs, with ``online``
    GET  /health
    POST /api/events/      {"event_id"?, "venIds": [...], "shed_kw", "startTime", "endTime", "status"?} -> 201 | 409
    GET  /api/events/      PATCH /api/events/{event_id}      DELETE /api/events/{event_id} (cancel)
    GET  /api/readings?venId=&limit=     GET /api/rejected     GET /api/acks?correlationId=     GET /api/dispatches

Times are epoch seconds or ISO 8601. A bad request gets 422 naming the field; nothing it
receives can crash it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ven_common.contract import MqttTopics

from local_backend.ingest import online
from local_backend.store import Store

Epoch = float | datetime


def _epoch(value: Epoch) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


class Location(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class VenIn(BaseModel):
    """The seed's registration body (extra fields are ignored, as an additive client may send)."""

    name: str = Field(min_length=1, max_length=200)
    status: str = Field(default="online", min_length=1, max_length=32)
    location: Location | None = None
    registrationId: str = Field(min_length=1, max_length=128)

    @field_validator("registrationId")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if any(ch in value for ch in "/+#\0"):
            raise ValueError("must not contain '/', '+', '#' or NUL (it is the thing name in "
                             f"{MqttTopics('{registrationId}').cmd})")
        return value


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str | None = Field(default=None, min_length=1, max_length=128)
    venIds: list[str] = Field(min_length=1, max_length=10_000)
    shed_kw: float = Field(gt=0, le=1000)
    startTime: Epoch
    endTime: Epoch
    status: Literal["active", "draft"] = "active"

    @model_validator(mode="after")
    def _window(self) -> EventIn:
        if _epoch(self.endTime) <= _epoch(self.startTime):
            raise ValueError("endTime must be after startTime")
        return self


class EventPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    venIds: list[str] | None = Field(default=None, min_length=1)
    shed_kw: float | None = Field(default=None, gt=0, le=1000)
    startTime: Epoch | None = None
    endTime: Epoch | None = None
    status: Literal["active", "draft", "cancelled"] | None = None


def _ven_view(ven: dict[str, Any], now: float, fresh_sec: float) -> dict[str, Any]:
    return {"id": ven["id"], "name": ven["name"], "status": ven["status"], "registrationId": ven["registration_id"],
            "location": None if ven["lat"] is None else {"lat": ven["lat"], "lon": ven["lon"]},
            "online": online(ven, now, fresh_sec), "last_seen_ts": ven["last_seen_ts"],
            "auto_registered": bool(ven["auto_registered"])}


def _event_view(event: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event["event_id"], "venIds": event["ven_ids"], "shed_kw": event["shed_kw"],
            "startTime": event["start_ts"], "endTime": event["end_ts"], "status": event["status"],
            "revision": event["revision"]}


def _patched_fields(body: EventPatch) -> dict[str, Any]:
    """The store's columns a PATCH sets: only the fields it carries, times as epoch seconds."""
    given = {"ven_ids": body.venIds, "shed_kw": body.shed_kw, "status": body.status,
             "start_ts": None if body.startTime is None else _epoch(body.startTime),
             "end_ts": None if body.endTime is None else _epoch(body.endTime)}
    return {k: v for k, v in given.items() if v is not None}


def create_app(
    store: Store, *, mqtt_connected: Callable[[], bool], fresh_sec: float, clock: Callable[[], float] = time.time
) -> FastAPI:
    app = FastAPI(title="VEN local backend", version="0.1.0")
    _ven_routes(app, store, mqtt_connected, fresh_sec, clock)
    _event_routes(app, store, clock)
    _record_routes(app, store)
    return app


def _ven_routes(app: FastAPI, store: Store, mqtt_connected: Callable[[], bool], fresh_sec: float,
                clock: Callable[[], float]) -> None:
    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "mqtt_connected": mqtt_connected(), "vens": len(store.vens()),
                "readings": store.reading_count(), "counters": store.counters()}

    @app.post("/api/vens/", status_code=201)
    def register(body: VenIn) -> dict[str, Any]:
        now = clock()
        lat, lon = (body.location.lat, body.location.lon) if body.location else (None, None)
        row = store.register(body.registrationId, body.name, body.status, lat, lon, now)
        if row is None:
            raise HTTPException(409, f"VEN {body.registrationId!r} is already registered")
        return _ven_view(row, now, fresh_sec)

    @app.get("/api/vens/")
    def vens() -> list[dict[str, Any]]:
        now = clock()
        return [_ven_view(v, now, fresh_sec) for v in store.vens()]


def _event_routes(app: FastAPI, store: Store, clock: Callable[[], float]) -> None:
    @app.post("/api/events/", status_code=201)
    def create_event(body: EventIn) -> dict[str, Any]:
        event_id = body.event_id or f"evt-{uuid.uuid4().hex[:12]}"
        row = store.add_event(event_id, body.venIds, body.shed_kw, _epoch(body.startTime), _epoch(body.endTime),
                              body.status, clock())
        if row is None:
            raise HTTPException(409, f"event {event_id!r} exists: PATCH it instead")
        return _event_view(row)

    @app.get("/api/events/")
    def events() -> list[dict[str, Any]]:
        return [_event_view(e) for e in store.events()]

    @app.patch("/api/events/{event_id}")
    def modify_event(event_id: str, body: EventPatch) -> dict[str, Any]:
        event = store.event(event_id)
        if event is None:
            raise HTTPException(404, f"no event {event_id!r}")
        fields = _patched_fields(body)
        if fields.get("end_ts", event["end_ts"]) <= fields.get("start_ts", event["start_ts"]):
            raise HTTPException(422, "endTime must be after startTime")
        updated = store.update_event(event_id, clock(), **fields)
        assert updated is not None
        return _event_view(updated)

    @app.delete("/api/events/{event_id}")
    def cancel_event(event_id: str) -> dict[str, Any]:
        if store.event(event_id) is None:
            raise HTTPException(404, f"no event {event_id!r}")
        updated = store.update_event(event_id, clock(), status="cancelled")
        assert updated is not None
        return _event_view(updated)


def _record_routes(app: FastAPI, store: Store) -> None:
    """What the backend received: readings, rejected messages, acks, the commands it dispatched."""

    @app.get("/api/readings")
    def readings(venId: str | None = None, limit: Annotated[int, Query(ge=1, le=100_000)] = 100) -> list[dict[str, Any]]:
        return store.readings(venId, limit=limit)

    @app.get("/api/rejected")
    def rejected(limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
        return store.rejected(limit)

    @app.get("/api/acks")
    def acks(correlationId: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
        return store.acks(correlationId, limit)

    @app.get("/api/dispatches")
    def dispatches(event_id: str | None = None) -> list[dict[str, Any]]:
        return store.dispatches(event_id)
