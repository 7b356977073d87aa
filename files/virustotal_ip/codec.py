# SPDX-License-Identifier: MIT
"""JSON, and what untrusted text (alert fields, VirusTotal strings) becomes before use.

Why the package imports `posix` and `_json` rather than `os` and `json`: integratord waits on
every alert, and a cache hit's cost is mostly the interpreter starting and importing. The
wrapper runs Python with -S, so nothing has imported `os` yet: it would import stat,
posixpath, genericpath and _collections_abc (about 1.8 ms on Python 3.9, a sixth of a hit),
for functions `posix` (already loaded by the interpreter) has itself. Paths are joined with
"/" (Wazuh runs on Linux only).

The JSON functions call the C scanner and encoder json itself uses (`_json`) because
`import json` also imports `re` and compiles seven patterns: as much time as the rest of a
cache hit. Where `_json` is missing or differs (not CPython), json itself is used.
"""
from __future__ import annotations

import math
import time

MAX_TEXT = 256                # longest VT- or alert-provided string forwarded


def _not_serializable(value: object) -> None:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class _ScanOptions:
    """What json.JSONDecoder hands its C scanner: the defaults of json.loads."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float          # NaN, Infinity, -Infinity, as json.loads


def json_codec(accelerated: bool = True) -> tuple:
    """(loads, dumps) behaving as json.loads(str) and json.dumps(value) with default options."""
    try:
        if not accelerated:
            raise ImportError("json requested")
        import _json
        scan = _json.make_scanner(_ScanOptions)
        encode = _json.make_encoder(None, _not_serializable, _json.encode_basestring_ascii,
                                    None, ": ", ", ", False, False, True)
    except (ImportError, AttributeError, TypeError):
        import json
        return json.loads, json.dumps

    def loads(text: str) -> object:
        text = text.strip(" \t\n\r")
        try:
            value, end = scan(text, 0)
            if end == len(text):
                return value
        except (StopIteration, SystemError):
            pass    # SystemError: the scanner reports errors with json.decoder, not imported yet
        import json
        return json.loads(text)   # invalid: json raises the ValueError that says why

    def dumps(value: object) -> str:
        return "".join(encode(value, 0))

    return loads, dumps


json_loads, json_dumps = json_codec()


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: object) -> bool:
    return is_int(v) or (isinstance(v, float) and math.isfinite(v))     # NaN and infinities are not numbers


def shown(value: object, limit: int = 80) -> str:
    """A log-safe rendering of an untrusted value: JSON-escaped (no newlines) and short."""
    text = json_dumps(value if isinstance(value, (str, int, float, bool, type(None))) else str(value))
    return text if len(text) <= limit else text[:limit] + "...\""


def clean_text(value: object, limit: int = MAX_TEXT) -> str:
    """A VT- or alert-provided string fit for an event: no control characters, bounded."""
    if not isinstance(value, str):
        return ""
    return "".join(ch for ch in value[:limit] if ch >= " " and ch != "\x7f")


def dig(obj: object, path: str) -> object:
    """The value at a dotted path (`data.srcip`), or None."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def text_at(obj: object, path: str, limit: int = MAX_TEXT) -> str:
    """A short string at a dotted path; numbers are accepted as Wazuh stores them as text."""
    value = dig(obj, path)
    if is_int(value):
        value = str(value)
    return clean_text(value, limit)


def iso_utc(epoch: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC, or None when absent or out of range."""
    if epoch is None:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):
        return None
