"""Vaccine cold chain (second seed paper §2 and §5 worked example): temperature and location traces.

Context schema: {agent: str (required), time_ms?: int, event?: str, location?: str,
temperature?: number, unit?: "C" | "F" (default "C")}. A record whose temperature, in °C, lies
outside 2–8 °C is flagged "excursion" (it is stored: an excursion is evidence, not an error).
Functions and minting policies: see contracts/specific.py.
"""

from __future__ import annotations

from ledger_node.contracts.specific import known_fields, make_functions, number, text

NAME = "vaccine"
COLD_CHAIN_C = (2.0, 8.0)
FIELDS = {"agent", "time_ms", "event", "location", "temperature", "unit"}


def celsius(value: float, unit: str) -> float:
    return (value - 32.0) * 5.0 / 9.0 if unit == "F" else value


def check_context(trace: str, context: dict) -> list[str]:
    known_fields(context, FIELDS)
    text(context, "event")
    text(context, "location")
    unit = text(context, "unit", choices=("C", "F")) or "C"
    temperature = number(context, "temperature", -273.15, 1000.0)
    low, high = COLD_CHAIN_C
    if temperature is not None and not low <= celsius(temperature, unit) <= high:
        return ["excursion"]
    return []


FUNCTIONS = make_functions(NAME, check_context)
