# Entry point on boards (run after boot.py) and on the unix port (`micropython main.py`, with the
# device folder as working directory). Safe boot first: with a file SAFEBOOT present, or the
# board's safe-boot pin held, return at once so mpremote keeps the REPL.
import os
import sys


def _safeboot_file():
    try:
        os.stat("SAFEBOOT")
        return True
    except OSError:
        return False


def _start():
    if sys.platform not in ("esp32", "rp2"):
        sys.path.insert(0, (__file__.rpartition("/")[0] or ".") + "/lib")
    if _safeboot_file():
        print("safe boot: SAFEBOOT file present, app not started")
        return 0
    if _safeboot_pin():
        print("safe boot: pin held, app not started")
        return 0
    import supervisor

    return supervisor.main()


def _safeboot_pin():
    from board import Board
    import config

    try:
        return Board(config.load_board()).safeboot_held()
    except config.ConfigError:
        return False  # reported by the supervisor with the rest of the config


code = _start()
if code and sys.platform not in ("esp32", "rp2"):
    sys.exit(code)
