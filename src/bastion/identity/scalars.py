"""Text that can be stored: every string a sequence of Unicode scalar values.

Python's JSON parser turns an escaped lone surrogate (U+D800 to U+DFFF, alone or in the
wrong order) into a ``str`` that UTF-8 cannot encode; so does a command-line argument
holding bytes that are not UTF-8 (``surrogateescape``). Such a string crashes the first
database query, hash or encode that meets it, deep inside a request. Every boundary that
parses untrusted JSON (token and assertion headers and claims, admin request bodies)
checks what it parsed here once and refuses the whole document, so nothing past the
boundary ever sees one.
"""

from __future__ import annotations

from typing import Any


def encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode (no lone or reversed surrogates), so UTF-8 takes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def all_encodable(value: Any) -> bool:
    """Whether every string in parsed JSON ``value`` (object keys too, at any depth) is.

    Walks with an explicit stack: a deeply nested document cannot raise RecursionError.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not encodable(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return True


def digest_bytes(text: str) -> bytes:
    """``text`` as bytes for a digest, even when it is not valid Unicode.

    A command-line argument that was not UTF-8 gets its original bytes back
    (``surrogateescape``); any other lone surrogate is encoded as such (``surrogatepass``).
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
