# Board HAL: everything that differs between ESP32, Pico W and the unix port, driven by the board
# profile (hardware/boards/<name>.json, copied to the device as board.json at provisioning).
import sys
import time

from log import log

ON_BOARD = sys.platform in ("esp32", "rp2")
# Ports whose time epoch is 2000-01-01 report gmtime(0) as year 2000; the wire format wants Unix ms.
_EPOCH_OFFSET_MS = 946684800000 if time.gmtime(0)[0] == 2000 else 0


class Board:
    def __init__(self, profile):
        self.profile = profile
        self.wdt = None
        self._led = self._make_led(profile.get("led"))

    def _make_led(self, spec):
        if not spec or not ON_BOARD:
            return None
        import machine

        pin = machine.Pin(spec["pin"], machine.Pin.OUT)
        if spec.get("kind") == "neopixel":
            import neopixel

            return neopixel.NeoPixel(pin, 1)
        return pin

    def led(self, on):
        if self._led is None:
            return
        if hasattr(self._led, "fill"):
            self._led.fill((0, 8, 0) if on else (0, 0, 0))
            self._led.write()
        else:
            self._led.value(1 if on else 0)

    def start_watchdog(self):
        # Once started a WDT cannot be stopped: only after the safe-boot check has passed.
        ms = self.profile.get("wdt_ms") or 0
        if ON_BOARD and ms:
            import machine

            self.wdt = machine.WDT(timeout=ms)
            log("I", "watchdog armed,", ms, "ms")

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def safeboot_held(self):
        spec = self.profile.get("safeboot")
        if not spec or not ON_BOARD:
            return False
        if spec.get("bootsel"):
            import rp2

            return bool(rp2.bootsel_button())
        import machine

        pull = machine.Pin.PULL_UP if spec.get("pull") == "up" else machine.Pin.PULL_DOWN
        return machine.Pin(spec["pin"], machine.Pin.IN, pull).value() == spec.get("active", 0)

    def sensor(self, name, seed):
        pins = self.profile.get("sensors", {}).get(name)
        if pins is None:
            raise OSError("board %s has no wiring for sensor %s" % (self.profile.get("name"), name))
        if name == "sim_coldchain":
            from simsensor import ColdChain

            return ColdChain(seed)
        if name == "ds18b20":
            from ds18b20 import DS18B20

            return DS18B20(pins["pin"])
        import machine
        from bme280 import BME280

        i2c = machine.I2C(pins["i2c"], sda=machine.Pin(pins["sda"]), scl=machine.Pin(pins["scl"]), freq=pins["freq"])
        return BME280(i2c, pins["addr"])


def now_ms():
    return time.time_ns() // 1000000 + _EPOCH_OFFSET_MS


def sleep_ms(ms):
    time.sleep_ms(ms)
