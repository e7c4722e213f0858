# Simulated cold-chain temperature for the unix port: deterministic for a seed, identical on
# every port (own xorshift32, no `random`), values in milli-°C as the wire format wants.
# A fridge held at 5 °C drifts by a mean-reverting random walk; about one reading in 200 the
# door opens and the temperature jumps above the 2–8 °C band, then decays back (an excursion).

SETPOINT = 5000
MAX_STEP = 60


class ColdChain:
    def __init__(self, seed=1):
        self.state = (seed & 0xFFFFFFFF) or 0x9E3779B9
        self.temp = SETPOINT
        self.excursion = 0

    def _next(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def read(self):
        r = self._next()
        step = r % (2 * MAX_STEP + 1) - MAX_STEP
        self.temp += step - (self.temp - SETPOINT) // 16
        if (r >> 16) % 200 == 0:
            self.excursion = 3000 + (r >> 8) % 2000
        self.excursion = self.excursion * 3 // 4
        return (("temp", self.temp + self.excursion),)
