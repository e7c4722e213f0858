"""fixed_multiexp equals plain multiplication for any scalar, one base or several (spec §3.4 G5)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprov.crypto.fixed_base import fixed_multiexp
from edgeprov.crypto.points import R, g1, sc

pytestmark = pytest.mark.unit

u1, h1 = g1 * sc(0xC0FFEE), g1 * sc(0xBEEF)
scalars = st.one_of(st.sampled_from([0, 1, 2, R - 1, R, R + 5, 2**256 - 1]), st.integers(0, 2**300))


@settings(max_examples=40, deadline=None)
@given(scalars, scalars)
def test_matches_variable_base_multiplication(a: int, b: int) -> None:
    assert fixed_multiexp((g1,), (a,)) == g1 * sc(a)
    assert fixed_multiexp((u1, h1), (a, b)) == u1 * sc(a) + h1 * sc(b)
