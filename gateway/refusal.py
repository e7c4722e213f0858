"""Why the gateway did not relay a frame: a stable short reason for logs, metrics and the device's Ack."""

from __future__ import annotations


class Refused(Exception):
    """A frame refused with `reason` (a short code); `alert` marks the ones an operator must look at;
    `quiet` ones are counted but not logged per frame: their cause was logged once where it was learnt
    (a device revoked on the ledger keeps publishing)."""

    def __init__(self, reason: str, detail: str = "", alert: bool = False, quiet: bool = False) -> None:
        self.reason, self.detail, self.alert, self.quiet = reason, detail, alert, quiet
        super().__init__(f"{reason}: {detail}" if detail else reason)


class Duplicate(Exception):
    """A byte-identical copy of a frame already handled (QoS 1 redelivery, a device resend): drop it (G4)."""

    def __init__(self, device: str, epoch: int, ctr: int) -> None:
        self.device, self.epoch, self.ctr = device, epoch, ctr
        super().__init__(f"duplicate of {device}/{epoch}/{ctr}")
