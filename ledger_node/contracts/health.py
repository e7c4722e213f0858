"""Health monitoring (second seed paper §2): vital signs of a patient's monitor.

Context schema: {agent: str (required), time_ms?: int, event?: str, heart_rate_bpm?: number
0–300, spo2_pct?: number 0–100, systolic_mmhg?: number 0–300}. Flags: "bradycardia" (< 40 bpm),
"tachycardia" (> 150 bpm), "hypoxaemia" (SpO2 < 90 %), "hypertension" (systolic ≥ 180 mmHg).
Functions and minting policies: see contracts/specific.py.
"""

from __future__ import annotations

from ledger_node.contracts.specific import known_fields, make_functions, number, text

NAME = "health"
FIELDS = {"agent", "time_ms", "event", "heart_rate_bpm", "spo2_pct", "systolic_mmhg"}


def check_context(trace: str, context: dict) -> list[str]:
    known_fields(context, FIELDS)
    text(context, "event")
    rate = number(context, "heart_rate_bpm", 0, 300)
    spo2 = number(context, "spo2_pct", 0, 100)
    systolic = number(context, "systolic_mmhg", 0, 300)
    flags = []
    if rate is not None and rate < 40:
        flags.append("bradycardia")
    if rate is not None and rate > 150:
        flags.append("tachycardia")
    if spo2 is not None and spo2 < 90:
        flags.append("hypoxaemia")
    if systolic is not None and systolic >= 180:
        flags.append("hypertension")
    return flags


FUNCTIONS = make_functions(NAME, check_context)
