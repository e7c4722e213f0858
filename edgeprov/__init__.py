"""edgeprov: data provenance for IoT fleets.

This package holds what every CPython role shares: the ABS-IOT-V1 signature scheme
(`edgeprov.crypto`), wire formats and the provenance data model. Roles live beside it:
`gateway/`, `ledger_node/`, `tools/`; the MicroPython device code is in `firmware/`.
"""

__version__ = "0.1.0"
