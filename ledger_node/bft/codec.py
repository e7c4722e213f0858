"""Canonical binary encoding: fixed-width big-endian integers and length-prefixed byte strings.

One encoding for hashing, signing and the wire, so a value has exactly one byte form. Every read is
bounds-checked and raises DecodeError, never IndexError or struct.error, so a decoder fed hostile
bytes fails in one predictable way.
"""

from __future__ import annotations

import struct

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class DecodeError(ValueError):
    """The bytes are not a valid encoding of the expected value."""


class Writer:
    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        self._parts.append(_U8.pack(value))
        return self

    def u16(self, value: int) -> Writer:
        self._parts.append(_U16.pack(value))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(_U64.pack(value))
        return self

    def fixed(self, value: bytes) -> Writer:
        self._parts.append(value)
        return self

    def blob(self, value: bytes) -> Writer:
        self._parts.append(_U32.pack(len(value)))
        self._parts.append(value)
        return self

    def blobs(self, values: tuple[bytes, ...] | list[bytes]) -> Writer:
        self._parts.append(_U32.pack(len(values)))
        for value in values:
            self._parts.append(_U32.pack(len(value)))
            self._parts.append(value)
        return self

    def raw(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, size: int) -> bytes:
        end = self._pos + size
        if size < 0 or end > len(self._data):
            raise DecodeError("truncated")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return _U8.unpack(self._take(1))[0]

    def u16(self) -> int:
        return _U16.unpack(self._take(2))[0]

    def u32(self) -> int:
        return _U32.unpack(self._take(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self._take(8))[0]

    def fixed(self, size: int) -> bytes:
        return self._take(size)

    def blob(self, limit: int) -> bytes:
        size = self.u32()
        if size > limit:
            raise DecodeError(f"blob of {size} bytes exceeds {limit}")
        return self._take(size)

    def count(self, limit: int) -> int:
        """A list length, checked before anything is allocated for it."""
        size = self.u32()
        if size > limit:
            raise DecodeError(f"list of {size} items exceeds {limit}")
        return size

    def blobs(self, count_limit: int, item_limit: int) -> tuple[bytes, ...]:
        return tuple(self.blob(item_limit) for _ in range(self.count(count_limit)))

    def flag(self) -> bool:
        value = self.u8()
        if value > 1:
            raise DecodeError("flag must be 0 or 1")
        return value == 1

    def end(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError("trailing bytes")
