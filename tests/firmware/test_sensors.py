"""Sensor drivers on the MicroPython VM: the BME280 integer compensation (Bosch datasheet §4.2.3)
against the datasheet's double-precision formulas and its worked example, calibration parsing from
raw register bytes, and the simulated cold-chain sensor's determinism and excursions."""

from __future__ import annotations

import json
import struct

import pytest
from conftest import run_micropython
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

# The Bosch BMP280 datasheet example (§3.12) plus typical BME280 humidity trimming values.
T = (27504, 26435, -1000)
P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
H = (75, 362, 0, 313, 50, 30)


def registers(t=T, p=P, h=H) -> tuple[bytes, bytes]:
    """Calibration as the chip stores it: 0x88..0xA1 and 0xE1..0xE7 (H4/H5 share the nibbles of 0xE5)."""
    c88 = struct.pack("<HhhHhhhhhhhh", *t, *p) + bytes([0, h[0]])
    h4, h5 = h[3], h[4]
    e4, e5, e6 = (h4 >> 4) & 0xFF, (h4 & 0x0F) | ((h5 & 0x0F) << 4), (h5 >> 4) & 0xFF
    ce1 = struct.pack("<hB", h[1], h[2]) + bytes([e4, e5, e6]) + struct.pack("<b", h[5])
    return c88, ce1


def float_reference(adc_t: int, adc_p: int, adc_h: int, t=T, p=P, h=H) -> tuple[float, float, float]:
    """The datasheet's floating-point compensation (BME280 §8.1): °C, Pa, %RH."""
    v1 = (adc_t / 16384.0 - t[0] / 1024.0) * t[1]
    v2 = (adc_t / 131072.0 - t[0] / 8192.0) ** 2 * t[2]
    t_fine = v1 + v2
    v1 = t_fine / 2.0 - 64000.0
    v2 = v1 * v1 * p[5] / 32768.0 + v1 * p[4] * 2.0
    v2 = v2 / 4.0 + p[3] * 65536.0
    v1 = (p[2] * v1 * v1 / 524288.0 + p[1] * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * p[0]
    pa = 1048576.0 - adc_p
    pa = (pa - v2 / 4096.0) * 6250.0 / v1
    pa += (p[8] * pa * pa / 2147483648.0 + pa * p[7] / 32768.0 + p[6]) / 16.0
    x = t_fine - 76800.0
    x = (adc_h - (h[3] * 64.0 + h[4] / 16384.0 * x)) * (
        h[1] / 65536.0 * (1.0 + h[5] / 67108864.0 * x * (1.0 + h[2] / 67108864.0 * x))
    )
    x = min(100.0, max(0.0, x * (1.0 - h[0] * x / 524288.0)))
    return t_fine / 5120.0, pa, x


BME_DRIVER = """
import json, binascii, bme280
c88, ce1 = (binascii.unhexlify(x) for x in sys.argv[1:3])
cal = bme280.Calibration.from_registers(c88, ce1)
print(json.dumps([cal.t, cal.p, cal.h]))
for triple in json.load(open(sys.argv[3])):
    tf = bme280.t_fine(cal, triple[0])
    print(json.dumps([bme280.temperature(tf), bme280.pressure(cal, tf, triple[1]), dict(bme280.milli(cal, *triple))]))
"""


def run_bme(tmp_path, adcs: list[tuple[int, int, int]]) -> tuple[list, list]:
    c88, ce1 = registers()
    # Through a file: json.loads(sys.argv[i]) of a few hundred bytes aborts this MicroPython build.
    (tmp_path / "adcs.json").write_text(json.dumps(adcs))
    out = run_micropython(BME_DRIVER, tmp_path, c88.hex(), ce1.hex(), str(tmp_path / "adcs.json")).splitlines()
    return json.loads(out[0]), [json.loads(line) for line in out[1:]]


def test_bme280_calibration_parse_and_datasheet_example(tmp_path) -> None:
    cal, [(temp_centi, press_q8, milli)] = run_bme(tmp_path, [(519888, 415148, 30000)])
    assert cal == [list(T), list(P), list(H)]
    assert temp_centi == 2508  # 25.08 °C, the datasheet's result
    assert abs(press_q8 / 256 - 100653.27) < 0.5  # Pa
    assert milli["temp"] == 25080 and abs(milli["press"] - 1006533) <= 5


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.integers(420_000, 580_000), st.integers(250_000, 480_000), st.integers(15_000, 45_000)),
        min_size=1,
        max_size=30,
    )
)
def test_bme280_integer_math_matches_the_float_formulas(tmp_path, adcs) -> None:
    _, results = run_bme(tmp_path, adcs)
    for adc, (_, _, milli) in zip(adcs, results, strict=True):
        temp, pa, hum = float_reference(*adc)
        assert abs(milli["temp"] - temp * 1000) <= 10, adc
        assert abs(milli["press"] - pa * 10) <= 10, adc  # milli-hPa, within 1 Pa
        assert abs(milli["hum"] - hum * 1000) <= 50, adc  # within 0.05 %RH


SIM_DRIVER = """
import simsensor
for seed in (1, 1, 2):
    s = simsensor.ColdChain(seed)
    for _ in range(2000):
        print(seed, s.read()[0][1])
"""


def test_simulated_sensor_is_seeded_and_makes_excursions(tmp_path) -> None:
    values = [int(line.split()[1]) for line in run_micropython(SIM_DRIVER, tmp_path).splitlines()]
    a, b, c = values[:2000], values[2000:4000], values[4000:]
    assert a == b and a != c
    inside = sum(2000 <= t <= 8000 for t in a)
    assert inside > len(a) * 0.8, "the fridge should mostly hold the 2-8 °C band"
    assert max(a) > 8000, "no excursion above 8 °C in 2000 readings"
