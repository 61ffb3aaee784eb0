"""trailhead_sdk: small helpers for trailhead processor plugins written in Python (contract 0.2.0).

The 0.2.0 batches hand out packed columns (`string-column`, `value-column`, IDs packed one
after another) because one copy across the boundary is far cheaper than a Python object per
entry built by the bindings. These helpers unpack them into plain Python lists, once, inside
the plugin. They import nothing generated at module level, so they also run (and can be
tested) on an ordinary CPython; only `any_value` needs the componentize-py bindings.

Add the folder to the build with a second `-p`:

    componentize-py -d wit/0.2.0 -w processor componentize --stub-wasi app \\
        -p plugins/examples/NAME -p plugins/sdk-py -o NAME.wasm

The examples in the docstrings are its tests: `python3 -m doctest plugins/sdk-py/trailhead_sdk.py`.
"""

import json
import struct

__all__ = ["strings", "values", "ids", "durations", "any_value", "Config", "ConfigError"]

# `value-kind` by number. The bindings give an Enum; comparing numbers keeps this module free
# of generated imports.
_NONE, _STR, _BOOLEAN, _INT, _DOUBLE, _BYTES, _ARRAY, _KVLIST = range(8)


def _kind(kind) -> int:
    """The number of a `value-kind`, whether given as the bindings' Enum member or as an int."""
    return getattr(kind, "value", kind)


def strings(column) -> list:
    """Unpacks a `string-column` into a list of `str`, one per entry ("" where absent).

    `column` is anything with `bytes` and `ends`, as the bindings' `StringColumn` has.

    >>> from types import SimpleNamespace as Column
    >>> strings(Column(bytes=b"GETPOST", ends=[3, 3, 7]))
    ['GET', '', 'POST']
    """
    data, out, start = column.bytes, [], 0
    for end in column.ends:
        out.append(data[start:end].decode("utf-8", "replace"))
        start = end
    return out


def values(column) -> list:
    """Unpacks a `value-column` into a list of Python values, one per entry.

    `None` where an entry has no value; otherwise `str`, `bool`, `int`, `float` or `bytes`.
    Arrays and key-value lists come as `bytes` too: their protobuf encodings (`ArrayValue`,
    `KeyValueList`), which this module does not decode; read `column.kinds` to tell them
    from plain bytes.

    >>> from types import SimpleNamespace as Column
    >>> values(Column(kinds=[0, 1, 2, 3, 4], scalars=[0, 0, 1, -5, 4609434218613702656],
    ...               bytes=b"/healthz", ends=[0, 8, 8, 8, 8]))
    [None, '/healthz', True, -5, 1.5]
    """
    data, out, start = column.bytes, [], 0
    for kind, scalar, end in zip(column.kinds, column.scalars, column.ends):
        kind = _kind(kind)
        if kind == _NONE:
            value = None
        elif kind == _STR:
            value = data[start:end].decode("utf-8", "replace")
        elif kind == _BOOLEAN:
            value = scalar != 0
        elif kind == _INT:
            value = scalar
        elif kind == _DOUBLE:
            # The scalar is the double's IEEE 754 bits as a signed 64-bit int.
            value = struct.unpack("<d", struct.pack("<q", scalar))[0]
        else:
            value = bytes(data[start:end])
        out.append(value)
        start = end
    return out


def ids(packed: bytes, width: int, hex: bool = True) -> list:
    """Splits packed IDs (16 bytes per trace ID, 8 per span ID) into one per entry.

    Returns lowercase hex strings, as OTLP/JSON writes them, or `bytes` with `hex=False`.
    An absent ID is all zeros ("000…0"), as the host packs it.

    >>> ids(bytes(range(8)) + bytes(8), 8)
    ['0001020304050607', '0000000000000000']
    """
    if width <= 0 or len(packed) % width:
        raise ValueError(f"{len(packed)} bytes is not a whole number of {width}-byte IDs")
    chunks = (packed[i:i + width] for i in range(0, len(packed), width))
    return [c.hex() for c in chunks] if hex else [bytes(c) for c in chunks]


def durations(starts, ends) -> list:
    """Span durations in nanoseconds from `start-times` and `end-times`, one per span.

    0 where either time is unset (0) or the span ends before it starts, so a malformed span
    reads as instantaneous rather than as a huge or negative duration.

    >>> durations([100, 0, 300], [250, 50, 200])
    [150, 0, 0]
    """
    return [e - s if s and e and e >= s else 0 for s, e in zip(starts, ends)]


def any_value(value):
    """Wraps a Python value as the bindings' `any-value` for writes such as `set-attr`.

    `str`, `bool`, `int`, `float` and `bytes` map to their arms (`bool` is checked before
    `int`, since it is one in Python). Only importable inside a componentize-py build.
    """
    from wit_world.imports import types  # generated at build time
    if isinstance(value, str):
        return types.AnyValue_Str(value)
    if isinstance(value, bool):
        return types.AnyValue_Boolean(value)
    if isinstance(value, int):
        return types.AnyValue_Int(value)
    if isinstance(value, float):
        return types.AnyValue_Double(value)
    if isinstance(value, (bytes, bytearray)):
        return types.AnyValue_Bytes(bytes(value))
    raise TypeError(f"no any-value for {type(value).__name__}")


class ConfigError(ValueError):
    """A config the plugin rejects. Its message names the field, as the host asks of `init`
    errors (`paths: expected a list of strings`); raise `Err(str(e))` with it from `init`."""


class Config:
    """The processor's JSON config, read with checks that name the offending field.

    `Config(text, known=("paths",))` parses `text` (empty means `{}`) and rejects keys outside
    `known`, so a typo is an error rather than silently ignored. The getters return the
    default when the key is absent.

    >>> Config('{"paths": ["/livez"]}', known=("paths",)).strings("paths")
    ['/livez']
    >>> Config('{"path": []}', known=("paths",))
    Traceback (most recent call last):
    trailhead_sdk.ConfigError: path: unknown key; expected paths
    """

    def __init__(self, text: str, known=()):
        """Parses `text` and checks it is an object whose keys are all in `known`."""
        try:
            self.settings = json.loads(text or "{}")
        except ValueError as e:
            raise ConfigError(f"config: invalid JSON: {e}") from None
        if not isinstance(self.settings, dict):
            raise ConfigError("config: expected an object")
        unknown = sorted(set(self.settings) - set(known))
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown key; expected {', '.join(known)}")

    def strings(self, key: str, default=()) -> list:
        """The list of strings at `key`, or `default`."""
        value = self.settings.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings")
        return value

    def string(self, key: str, default: str = "") -> str:
        """The string at `key`, or `default`."""
        value = self.settings.get(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        """The boolean at `key`, or `default`."""
        value = self.settings.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false")
        return value

    def integer(self, key: str, default: int = 0) -> int:
        """The integer at `key`, or `default` (a JSON number with a fraction is refused)."""
        value = self.settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer")
        return value
