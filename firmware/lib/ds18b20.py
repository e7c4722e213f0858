# DS18B20 on a OneWire bus (`onewire`, `ds18x20` modules of MicroPython), 4.7 kΩ pull-up to 3V3
# (hardware/README.md). The first sensor found on the bus is used. The temperature comes from the
# raw scratchpad (1/16 °C, two's complement) so no float is involved: milli-°C = raw * 125 / 2.
import time

CONVERT_MS = 750  # 12-bit conversion time, datasheet table 2


class DS18B20:
    def __init__(self, pin):
        import machine
        import onewire
        import ds18x20

        self.ds = ds18x20.DS18X20(onewire.OneWire(machine.Pin(pin)))
        roms = self.ds.scan()
        if not roms:
            raise OSError("no DS18B20 on pin %s (check the 4.7k pull-up)" % pin)
        self.rom = roms[0]

    def read(self):
        self.ds.convert_temp()
        time.sleep_ms(CONVERT_MS)
        buf = self.ds.read_scratch(self.rom)
        raw = buf[0] | buf[1] << 8
        if raw & 0x8000:
            raw -= 0x10000
        return (("temp", raw * 125 // 2),)
