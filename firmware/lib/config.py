# The device config, one JSON file written by `edgeprov provision` (firmware/README.md lists the keys).
# Every problem is a ConfigError whose message names the file and the key, so the console says
# exactly what to fix; the supervisor prints it and stops instead of looping.
import json

PATH = "config.json"
BOARD_PATH = "board.json"
SENSORS = ("sim_coldchain", "ds18b20", "bme280")

# key: (type, required, default)
_SCHEMA = {
    "version": (int, True, None),
    "device_id": (str, True, None),
    "gateway_id": (str, True, None),
    "epoch": (int, True, None),
    "bundle": (str, True, None),
    "record": (str, True, None),
    "broker": (dict, True, None),
    "sensor": (str, True, None),
    "board": (str, True, None),
    "interval_ms": (int, False, 10000),
    "pool_target": (int, False, 4),
    "buffer_slots": (int, False, 256),
    "buffer_slot_size": (int, False, 400),
    "jacobian": (bool, False, False),
    "sim_seed": (int, False, 1),
    "wifi": (dict, False, None),
    "max_readings": (int, False, 0),
}
_BROKER = {
    "host": (str, True, None),
    "port": (int, True, None),
    "tls": (bool, False, False),
    "ca": (str, False, None),
    "username": (str, False, None),
    "password": (str, False, None),
    "keepalive": (int, False, 60),
}


class ConfigError(Exception):
    pass


def _read_json(path, what):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError("%s is missing: %s (provision it with `edgeprov provision`)" % (what, path))
    try:
        doc = json.loads(text)
    except ValueError:
        raise ConfigError("%s is not valid JSON: %s" % (what, path))
    if not isinstance(doc, dict):
        raise ConfigError("%s must hold a JSON object: %s" % (what, path))
    return doc


def _check(doc, schema, where):
    for key, (kind, required, default) in schema.items():
        if key not in doc or doc[key] is None:
            if required:
                raise ConfigError("%s: key '%s' is missing" % (where, key))
            doc[key] = default
        elif type(doc[key]) is not kind:
            raise ConfigError("%s: key '%s' must be %s" % (where, key, kind.__name__))
    return doc


def load(path=PATH):
    cfg = _check(_read_json(path, "device config"), _SCHEMA, path)
    if cfg["version"] != 1:
        raise ConfigError("%s: version %d is not supported (expected 1)" % (path, cfg["version"]))
    _check(cfg["broker"], _BROKER, path + " broker")
    if cfg["sensor"] not in SENSORS:
        raise ConfigError("%s: sensor '%s' is not one of %s" % (path, cfg["sensor"], ", ".join(SENSORS)))
    if cfg["broker"]["tls"] and not cfg["broker"]["ca"]:
        raise ConfigError("%s: broker.tls needs broker.ca (the CA certificate file)" % path)
    for key in ("interval_ms", "pool_target", "buffer_slots", "buffer_slot_size"):
        if cfg[key] < 1:
            raise ConfigError("%s: key '%s' must be >= 1" % (path, key))
    return cfg


def load_board(path=BOARD_PATH):
    return _read_json(path, "board profile")
