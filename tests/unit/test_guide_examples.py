"""The operations guide's JSON examples, byte for byte, through the VEN's pure core.

The guide (docs/operations-guide.md, the seed's verbatim) prints the DR Event and Restore commands a
backend sends and the ack it gets back: each command, as printed, is accepted, and the ack carries
every field of the guide's ack with the same JSON type. (The live run of the guide's shell commands
is tests/integration/test_start_guide.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

from core_support import T0, Building, make_engine

from tests.support.guide import all_commands, blocks

REPO = Path(__file__).resolve().parents[2]

GUIDE = REPO / "docs/operations-guide.md"


def _json(section_end: str) -> str:
    return next(b.text for b in blocks(GUIDE, "guide") if b.lang == "json" and b.section.endswith(section_end))


def test_the_guides_event_and_restore_commands_as_printed_are_accepted_with_the_guides_ack_fields() -> None:
    engine = make_engine()
    building = Building(engine.config)
    engine.on_readings(T0, building.samples())
    guide_ack = json.loads(_json("VEN Acknowledgment"))

    ack, fx = engine.on_command(T0 + 1, _json("DR Event Command").encode())
    assert ack["status"] == "accepted", ack
    for key, value in guide_ack.items():
        assert key in ack and type(ack[key]) is type(value), (key, ack)
    assert ack["correlationId"] == "corr-1234567890" and ack["event_id"] == "evt-001"
    building.apply(fx.writes)

    restored, _ = engine.on_command(T0 + 5, _json("Restore Command").encode())
    assert restored["status"] == "accepted" and restored["op"] == "restore", restored
    assert restored["correlationId"] == "restore-1234567890"


def test_every_command_block_of_the_guide_is_found() -> None:
    """The guide-as-a-test reads what the guide prints: the sections the issue names are all there."""
    sections = {cmd.section for cmd in all_commands((GUIDE, "guide"))}
    for name in ("Start VEN", "Check Status", "Send DR Event", "Restore Loads", "Stop VEN", "Check IoT Shadow",
                 "Monitor Telemetry", "View Logs", "VEN Registration", "VEN Not Receiving Commands",
                 "Quick Reference"):
        assert any(s.endswith(name) for s in sections), (name, sections)
    broken = [c for c in all_commands((GUIDE, "guide")) if c.form != "printed"]
    assert [c.form for c in broken] == ["broken", "stray", "meant"]
    assert broken[2].text == "./scripts/ven_control.sh send-event --shed-kw 2.0 --duration 300"
