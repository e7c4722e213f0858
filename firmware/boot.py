# Runs before main.py on boards. Kept trivial so it can never lock the board: no imports from lib/,
# no network. The safe-boot escape and everything else are in main.py.
import gc

try:
    import esp

    esp.osdebug(None)  # silence the IDF log on the REPL UART
except ImportError:
    pass
gc.collect()
