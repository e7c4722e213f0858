# Supervisor (firmware/README.md "Boot"): load config and board, open the signer, arm the
# watchdog, then run the app and restart it after any error with exponential backoff. Errors an
# operator must fix (config, lost device record) stop instead of looping: print, return 2.
import gc
import sys
import time

from abs_device import RecordLost, Signer
from board import ON_BOARD, Board
from log import log

# The signer (its 9.6 KB comb tables need one contiguous block) is opened before the app's modules
# are imported: compiling them leaves the heap fragmented (96 KB heap on the unix port). The same
# Signer object serves every app restart; its in-memory record is never behind the one on disk.

BACKOFF_MAX_MS = 60000
LOST = "device record lost, refusing to sign until re-keyed (spec §4 D4)"


def _fatal(what, exc):
    print("FATAL:", what + ":", exc)
    return 2


def _network(cfg, board):
    if not (ON_BOARD and board.profile.get("wifi")):
        return
    import net

    wifi = cfg["wifi"] or {}
    net.wifi_up(wifi.get("ssid", ""), wifi.get("password", ""), board.feed)
    if board.profile.get("ntp"):
        net.ntp_sync(board.feed)


def _signer(cfg, ConfigError):
    signer = Signer(cfg["bundle"], cfg["record"])
    if signer.device_id != cfg["device_id"] or signer.epoch != cfg["epoch"]:
        raise ConfigError("bundle is for %s epoch %d, config says %s epoch %d"
                          % (signer.device_id, signer.epoch, cfg["device_id"], cfg["epoch"]))
    return signer


def _prepare():
    # -> (cfg, board, signer), or an exit code after a fatal error. The config module (~5 KB of
    # heap) is needed only here: it is dropped afterwards.
    import config

    try:
        cfg = config.load()
        board = Board(config.load_board())
        # The signer is opened before the watchdog is armed: a fatal error must not become a reset loop.
        return cfg, board, _signer(cfg, config.ConfigError)
    except RecordLost as exc:
        return _fatal(LOST, exc)
    except (config.ConfigError, ValueError) as exc:
        return _fatal("config error", exc)


def main():
    ready = _prepare()
    sys.modules.pop("config", None)
    if type(ready) is int:
        return ready
    cfg, board, signer = ready
    board.start_watchdog()
    _network(cfg, board)
    return _supervise(cfg, board, signer)


def _supervise(cfg, board, signer):
    from app import App

    backoff = 1000
    while True:
        app = None
        try:
            app = App(cfg, board, signer)
            app.run()
            return 0
        except RecordLost as exc:
            return _fatal(LOST, exc)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # MemoryError and OSError included: log, back off, restart the app
            log("E", "app crashed:", repr(exc))
            sys.print_exception(exc)
        finally:
            if app is not None:
                app.close()
        gc.collect()
        log("I", "restarting the app in", backoff, "ms")
        end = time.ticks_add(time.ticks_ms(), backoff)
        while time.ticks_diff(end, time.ticks_ms()) > 0:
            board.feed()
            time.sleep_ms(100)
        backoff = min(backoff * 2, BACKOFF_MAX_MS)
