"""A device whose flash was partly rolled back (spec §4 D5): its record gets back pool entries it already
spent but keeps its counter, so its next readings carry NEW counters with REUSED nonce points R_dev.

Built with the CPython device reference (edgeprov/crypto/device.py): the record is re-encoded with the
device's own MAC key, as a restored flash image would be, and the real DeviceSigner signs from it.
"""

from __future__ import annotations

from edgeprov.crypto.device import DeviceRecord, DeviceSigner, write_atomically
from edgeprov.crypto.objects import PoolEntry


def restore_pool(signer: DeviceSigner, spent: list[PoolEntry]) -> DeviceSigner:
    """Put `spent` entries back in front of the device's pool; counter and pool_index stay where they are."""
    now = signer.record
    record = DeviceRecord(now.epoch, now.pool_index, now.ctr, [*spent, *now.entries])
    write_atomically(signer.path, record.encode(signer.mac_key))
    return DeviceSigner(signer.bundle, signer.path)
