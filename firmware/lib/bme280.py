# BME280 over I2C: temperature, humidity and pressure with the integer compensation formulas of
# the Bosch BME280 datasheet (BST-BME280-DS002, §4.2.3, int32 temperature/humidity and int64
# pressure variants). Python ints do not overflow, so the only C detail to mirror is that C
# division truncates toward zero. Outputs milli-units: temp m°C, hum m%RH, press m-hPa.
import time

CHIP_ID = 0x60


def _s16(v):
    return v - 0x10000 if v & 0x8000 else v


def _s8(v):
    return v - 0x100 if v & 0x80 else v


def _tdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


class Calibration:
    def __init__(self, t, p, h):
        self.t, self.p, self.h = t, p, h

    @classmethod
    def from_registers(cls, c88, ce1):
        # c88: 26 bytes from 0x88 (0xA0 unused, 0xA1 = H1); ce1: 7 bytes from 0xE1.
        w = [c88[i] | c88[i + 1] << 8 for i in range(0, 24, 2)]
        t = (w[0], _s16(w[1]), _s16(w[2]))
        p = (w[3],) + tuple(_s16(x) for x in w[4:12])
        h4 = _s8(ce1[3]) * 16 | (ce1[4] & 0x0F)
        h5 = _s8(ce1[5]) * 16 | (ce1[4] >> 4)
        h = (c88[25], _s16(ce1[0] | ce1[1] << 8), ce1[2], h4, h5, _s8(ce1[6]))
        return cls(t, p, h)


def t_fine(cal, adc_t):
    t1, t2, t3 = cal.t
    var1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
    var2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
    return var1 + var2


def temperature(tf):
    # 0.01 °C
    return (tf * 5 + 128) >> 8


def pressure(cal, tf, adc_p):
    # Pa in Q24.8 (value / 256 = Pa)
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = cal.p
    var1 = tf - 128000
    var2 = var1 * var1 * p6
    var2 += (var1 * p5) << 17
    var2 += p4 << 35
    var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12)
    var1 = (((1 << 47) + var1) * p1) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    p = _tdiv(((p << 31) - var2) * 3125, var1)
    var1 = (p9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (p8 * p) >> 19
    return ((p + var1 + var2) >> 8) + (p7 << 4)


def humidity(cal, tf, adc_h):
    # %RH in Q22.10 (value / 1024 = %RH)
    h1, h2, h3, h4, h5, h6 = cal.h
    v = tf - 76800
    v = ((((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15) * (
        ((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14
    )
    v -= ((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4
    v = 0 if v < 0 else min(v, 419430400)
    return v >> 12


def milli(cal, adc_t, adc_p, adc_h):
    tf = t_fine(cal, adc_t)
    return (
        ("hum", humidity(cal, tf, adc_h) * 1000 >> 10),
        ("press", pressure(cal, tf, adc_p) * 10 >> 8),
        ("temp", temperature(tf) * 10),
    )


class BME280:
    def __init__(self, i2c, addr=0x76):
        self.i2c, self.addr = i2c, addr
        chip = self._read(0xD0, 1)[0]
        if chip != CHIP_ID:
            raise OSError("no BME280 at I2C 0x%02x (chip id 0x%02x)" % (addr, chip))
        self.cal = Calibration.from_registers(self._read(0x88, 26), self._read(0xE1, 7))

    def _read(self, reg, n):
        return self.i2c.readfrom_mem(self.addr, reg, n)

    def read(self):
        # Forced mode, oversampling x1 for all three: one measurement, then sleep (datasheet §3.3.3).
        self.i2c.writeto_mem(self.addr, 0xF2, b"\x01")
        self.i2c.writeto_mem(self.addr, 0xF4, b"\x25")
        for _ in range(20):
            time.sleep_ms(5)
            if not self._read(0xF3, 1)[0] & 0x08:
                break
        d = self._read(0xF7, 8)
        adc_p = d[0] << 12 | d[1] << 4 | d[2] >> 4
        adc_t = d[3] << 12 | d[4] << 4 | d[5] >> 4
        adc_h = d[6] << 8 | d[7]
        return milli(self.cal, adc_t, adc_p, adc_h)
