"""The guide's EventCommandService: every 5 s, for each event with ``status == "active"`` and
``startTime <= now <= endTime``, for each of its VENs that is online, publish the DR command to
``ven/cmd/{registration_id}`` (the registration id, not the database id).

Each (event, VEN, revision) is sent once; a change to the event (kW, window) is a new revision and
is sent again (the VEN modifies the event with the same ``event_id``). The command's
``correlationId`` is derived from (event, VEN, revision), so a resend after a backend restart is
the same command: the VEN answers it with its stored ack instead of acting twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ven_common.contract import MqttTopics, event_command

from local_backend.ingest import online
from local_backend.store import Store

INTERVAL_SEC = 5.0


def due_commands(store: Store, now: float, fresh_sec: float) -> list[tuple[str, dict[str, Any], tuple[str, str, int]]]:
    """(topic, command, dispatch key) for everything the loop sends now (pure: store in, list out)."""
    out: list[tuple[str, dict[str, Any], tuple[str, str, int]]] = []
    vens = {v["registration_id"]: v for v in store.vens()}
    for event in store.events():
        if event["status"] == "cancelled":
            # Every VEN that got the event is told to cancel it (revision 0 records the cancel).
            for sent in store.dispatches(event["event_id"]):
                ven_id = sent["ven_id"]
                if sent["revision"] == 0 or store.dispatched(event["event_id"], ven_id, 0):
                    continue
                command = {"op": "cancel", "correlationId": f"bk-{event['event_id']}-{ven_id}-cancel",
                           "venId": ven_id, "event_id": event["event_id"]}
                key = (event["event_id"], ven_id, 0)
                if key not in [k for _, _, k in out]:
                    out.append((MqttTopics(ven_id).cmd, command, key))
            continue
        if event["status"] != "active" or not event["start_ts"] <= now <= event["end_ts"]:
            continue
        for ven_id in event["ven_ids"]:
            ven = vens.get(ven_id)
            if ven is None or not online(ven, now, fresh_sec):
                continue
            if store.dispatched(event["event_id"], ven_id, event["revision"]):
                continue
            correlation_id = f"bk-{event['event_id']}-{ven_id}-r{event['revision']}"
            # The window as the backend holds it (start_ts is the VEN's documented addition): a VEN
            # that gets it late starts at once and keeps the original end; a new revision modifies it.
            duration = max(1, math.ceil(event["end_ts"] - event["start_ts"]))
            command = event_command(correlation_id=correlation_id, ven_id=ven_id, event_id=event["event_id"],
                                    shed_kw=float(event["shed_kw"]), duration_sec=duration,
                                    start_ts=float(event["start_ts"]))
            out.append((MqttTopics(ven_id).cmd, command, (event["event_id"], ven_id, int(event["revision"]))))
    return out


def run_once(store: Store, now: float, publish: Callable[[str, dict[str, Any]], bool], fresh_sec: float) -> int:
    sent = 0
    for topic, command, (event_id, ven_id, revision) in due_commands(store, now, fresh_sec):
        if publish(topic, command):
            store.add_dispatch(event_id, ven_id, revision, command["correlationId"], now)
            sent += 1
    return sent
