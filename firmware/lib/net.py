# WiFi station with exponential backoff, then NTP (boards only; on the unix port the host is online
# and its clock is set). The caller feeds the watchdog through `feed` while waiting.
import time

from log import log

BACKOFF_MAX_MS = 60000


def wifi_up(ssid, password, feed, timeout_ms=20000):
    import network

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    backoff = 1000
    while not wlan.isconnected():
        log("I", "wifi: connecting to", ssid)
        wlan.connect(ssid, password)
        start = time.ticks_ms()
        while not wlan.isconnected() and time.ticks_diff(time.ticks_ms(), start) < timeout_ms:
            feed()
            time.sleep_ms(200)
        if wlan.isconnected():
            break
        log("W", "wifi: no connection, retry in", backoff, "ms")
        _wait(backoff, feed)
        backoff = min(backoff * 2, BACKOFF_MAX_MS)
    log("I", "wifi: up,", wlan.ifconfig()[0])
    return wlan


def ntp_sync(feed, attempts=5):
    import ntptime

    backoff = 1000
    for _ in range(attempts):
        try:
            ntptime.settime()
            log("I", "ntp: clock set")
            return True
        except OSError as exc:
            log("W", "ntp: failed", exc)
            _wait(backoff, feed)
            backoff *= 2
    return False


def _wait(ms, feed):
    end = time.ticks_add(time.ticks_ms(), ms)
    while time.ticks_diff(end, time.ticks_ms()) > 0:
        feed()
        time.sleep_ms(200)
