"""Vehicle forensics (second seed paper §2, Fig. 2): a vehicle's life from factory to accident.

Context schema: {agent: str (required), time_ms?: int, event: "manufacture" | "maintenance" |
"inspection" | "drive" | "accident" (required), odometer_km?: number ≥ 0, speed_kmh?: number 0–500,
location?: str, road?: str}. Flags: "accident" on accident records, "speeding" above 130 km/h.
Typical use: the vehicle owns its data point and approves a garage as operator for an inspection.
Functions and minting policies: see contracts/specific.py.
"""

from __future__ import annotations

from ledger_node.contracts.specific import known_fields, make_functions, number, text

NAME = "vehicle"
EVENTS = ("manufacture", "maintenance", "inspection", "drive", "accident")
FIELDS = {"agent", "time_ms", "event", "odometer_km", "speed_kmh", "location", "road"}


def check_context(trace: str, context: dict) -> list[str]:
    known_fields(context, FIELDS)
    event = text(context, "event", required=True, choices=EVENTS)
    text(context, "location")
    text(context, "road")
    number(context, "odometer_km", 0, 10_000_000)
    speed = number(context, "speed_kmh", 0, 500)
    flags = ["accident"] if event == "accident" else []
    if speed is not None and speed > 130:
        flags.append("speeding")
    return flags


FUNCTIONS = make_functions(NAME, check_context)
