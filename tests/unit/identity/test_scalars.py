"""The one check every JSON boundary uses: all strings are valid Unicode (UTF-8 encodable)."""

from __future__ import annotations

import json

import pytest

from bastion.identity.scalars import all_encodable, digest_bytes, encodable

BAD = ['"\\ud800"', '"\\udc00"', '"\\ude00\\ud83d"', '"a\\udfffb"']


@pytest.mark.parametrize("literal", BAD)
def test_lone_or_reversed_surrogates_anywhere_are_found(literal):
    """High, low, reversed: in a value, a key, a list, deep nesting: all are found."""
    value = json.loads(literal)
    assert not encodable(value)
    for document in (
        f"{{{literal}: 1}}",
        f'{{"a": {literal}}}',
        f'{{"a": [1, {{"b": [{literal}]}}]}}',
    ):
        assert not all_encodable(json.loads(document)), document
    assert not all_encodable(_deep(value))


def test_valid_text_passes():
    """A surrogate pair (an emoji), NUL, non-ASCII and non-strings are all fine."""
    assert all_encodable(json.loads('{"a": ["\\ud83d\\ude00", "\\u0000", "é", 1, null, true]}'))
    assert all_encodable(_deep("ok"))


def test_digest_bytes_of_cli_bytes_and_json_surrogates():
    """Non-UTF-8 argv bytes come back as themselves; other surrogates still encode."""
    assert digest_bytes("bcl_\udcff") == b"bcl_\xff"
    assert digest_bytes("\ud800") == "\ud800".encode("utf-8", "surrogatepass")
    assert digest_bytes("abc") == b"abc"


def _deep(leaf: object) -> object:
    """A list nested 100,000 deep: the walk must not recurse."""
    value: object = leaf
    for _ in range(100_000):
        value = [value]
    return value
