# Console log: one line per event, millisecond uptime first. Secrets are never passed here.
import time


def log(level, *parts):
    print("%9d %s %s" % (time.ticks_ms(), level, " ".join(str(p) for p in parts)))
