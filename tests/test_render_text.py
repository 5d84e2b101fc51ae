"""UTF-16 length, grapheme clusters and truncation (publisher.core.render.text)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.core.render.text import (
    clean_plain_text,
    grapheme_boundaries,
    graphemes,
    normalize_blank_lines,
    truncate,
    utf16_len,
)

ZWJ = "\u200d"
FAMILY = "👨\u200d👩\u200d👧\u200d👦"  # 4 astral emoji joined: 11 UTF-16 units
RAINBOW_FLAG = "🏳\ufe0f\u200d🌈"
THUMBS_MEDIUM = "👍🏽"
FLAG_UA = "🇺🇦"
FLAG_US = "🇺🇸"
E_ACUTE = "e\u0301"  # e + combining acute
DEVANAGARI = "क्षि"
SCOTLAND = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
EMOJI = frozenset("👨👩👧👦🏳🌈👍😀🎉")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("abc", 3),
        ("привет", 6),
        ("😀", 2),
        ("a😀b", 4),
        (FAMILY, 11),
        (FLAG_UA, 4),
        (E_ACUTE, 2),
        ("\U00020000", 2),  # CJK extension B
    ],
)
def test_utf16_len(text: str, expected: int) -> None:
    assert utf16_len(text) == expected


@pytest.mark.parametrize(
    ("text", "clusters"),
    [
        ("abc", ["a", "b", "c"]),
        ("a\r\nb", ["a", "\r\n", "b"]),
        (E_ACUTE + "x", [E_ACUTE, "x"]),
        (FAMILY + "!", [FAMILY, "!"]),
        (RAINBOW_FLAG + THUMBS_MEDIUM, [RAINBOW_FLAG, THUMBS_MEDIUM]),
        (FLAG_UA + FLAG_US + "🇺", [FLAG_UA, FLAG_US, "🇺"]),
        (SCOTLAND + "a", [SCOTLAND, "a"]),
        ("한국", ["한", "국"]),
        ("\u1100\u1161\u11a8", ["\u1100\u1161\u11a8"]),  # conjoining jamo: one syllable
        ("a" + ZWJ + "b", ["a" + ZWJ, "b"]),  # ZWJ joins only emoji to what follows
        ("\ud83d\ude00x", ["\ud83d\ude00", "x"]),  # an unjoined surrogate pair
    ],
)
def test_graphemes(text: str, clusters: list[str]) -> None:
    assert graphemes(text) == clusters
    assert "".join(clusters) == text


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("", 0, ""),
        # a sentence end near the limit wins, keeping the space before the ellipsis
        ("One two three four five six. Seven eight", 32, "One two three four five six. …"),
        # a sentence end far from the limit does not; a word gap does
        ("Hi. " + "word " * 20, 40, "Hi. word word word word word word word…"),
        # no gap near the end: cut between characters
        ("abcdefghijklmnopqrstuvwxyz", 10, "abcdefghi…"),
        # never split an entity, a ZWJ sequence, a flag or a combining mark
        ("Tom&amp;Jerry", 8, "Tom…"),
        ("Tom&#8217;s", 9, "Tom…"),
        ("ab" + FAMILY + "cd", 12, "ab…"),
        ("ab" + FLAG_UA + FLAG_US, 7, "ab" + FLAG_UA + "…"),
        ("abcd" + E_ACUTE + "fgh", 6, "abcd…"),
        ("x😀😀😀", 4, "x😀…"),
        # line breaks count as sentence ends
        ("The first line is here\nsecond line goes on", 26, "The first line is here…"),
        # CJK full stops need no space after them
        ("今日は晴れです。明日は雨でしょう", 10, "今日は晴れです。…"),
        # the ellipsis itself does not fit: a bare prefix
        ("abcdef", 0, ""),
    ],
)
def test_truncate_table(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected
    assert utf16_len(truncate(text, limit)) <= limit


def test_truncate_custom_ellipsis() -> None:
    assert truncate("one two three four", 12, ellipsis=" [...]") == "one [...]"
    assert truncate("one two three four", 2, ellipsis=" [...]") == "on"


def test_truncate_rejects_negative_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        truncate("abc", -1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\r\nb\rc", "a\nb\nc"),
        ("a\u00a0b\u202fc", "a b c"),
        ("zero\u200bwidth\ufeff soft\u00adhyphen", "zerowidth softhyphen"),
        ("keep " + FAMILY + " joined", "keep " + FAMILY + " joined"),
        ("\n\n  \nfirst  \n\n\n\nsecond\n\n", "first\n\nsecond"),
        ("bell\x07 tab\tend", "bell tab end"),
    ],
)
def test_clean_plain_text(text: str, expected: str) -> None:
    assert clean_plain_text(text) == expected


def test_normalize_blank_lines() -> None:
    assert normalize_blank_lines("\n a  \n\n\n\nb \n") == " a\n\nb"


# --------------------------------------------------------------------------
# Properties

ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
ATOMS = [
    FAMILY, RAINBOW_FLAG, THUMBS_MEDIUM, FLAG_UA, FLAG_US, "🇺", E_ACUTE, "\u0301", DEVANAGARI,
    SCOTLAND, "😀", "\U00020000", "𝔘", "&amp;", "&#8217;", "&#x1F600;", "&nbsp;", "&", ";",
    " ", "  ", "\n", "\r\n", ". ", "! ", "? ", "。", "…", ZWJ, "\ufe0f", "word", "Ünïcödé",
    "한국어", "\u1100\u1161", "x",
]  # fmt: skip
texts = st.lists(st.one_of(st.sampled_from(ATOMS), st.text(max_size=4)), max_size=40).map("".join)


def _not_inside_cluster(text: str, k: int, entities: bool = True) -> None:
    """Independent checks that index ``k`` does not split a user-perceived character."""
    if k == 0 or k >= len(text):
        return
    before, after = text[k - 1], text[k]
    if before in "\r\n" or unicodedata.category(before) in ("Cc", "Zl", "Zp"):
        return  # UAX #29 breaks after a control character whatever follows
    is_tag = 0xE0020 <= ord(before) <= 0xE007F
    if unicodedata.category(before) == "Cf" and before not in (ZWJ, "\u200c") and not is_tag:
        return
    assert unicodedata.category(after) not in ("Mn", "Me", "Mc"), "combining mark cut off"
    assert after not in (ZWJ, "\ufe0f") and not 0x1F3FB <= ord(after) <= 0x1F3FF
    assert not 0xE0020 <= ord(after) <= 0xE007F, "tag sequence split"
    if before == ZWJ and after in EMOJI:
        # GB11: a pictograph, variation selectors, ZWJ: joined to what follows
        j = k - 2
        while j >= 0 and text[j] == "\ufe0f":
            j -= 1
        assert not (j >= 0 and text[j] in EMOJI), "emoji ZWJ sequence split"
    assert not (before == "\r" and after == "\n")
    run = 0
    while k - run - 1 >= 0 and 0x1F1E6 <= ord(text[k - run - 1]) <= 0x1F1FF:
        run += 1
    if 0x1F1E6 <= ord(after) <= 0x1F1FF:
        assert run % 2 == 0, "flag split"
    for m in ENTITY.finditer(text if entities else ""):
        assert not m.start() < k < m.end(), "entity split"


@settings(max_examples=150, deadline=None)
@given(text=texts, limit=st.integers(min_value=1, max_value=60))
def test_truncate_properties(text: str, limit: int) -> None:
    out = truncate(text, limit)
    assert utf16_len(out) <= limit
    out.encode("utf-16-le")  # strict: raises on a lone surrogate
    if utf16_len(text) <= limit:
        assert out == text
        return
    assert out.endswith("…")
    prefix = out[: -len("…")]
    assert text.startswith(prefix)
    assert len(prefix) in grapheme_boundaries(text)
    _not_inside_cluster(text, len(prefix))


@settings(max_examples=100, deadline=None)
@given(text=texts)
def test_graphemes_partition_the_text(text: str) -> None:
    bounds = grapheme_boundaries(text)
    assert bounds[0] == 0 and bounds[-1] == len(text)
    assert bounds == sorted(set(bounds))
    for k in bounds:
        _not_inside_cluster(text, k, entities=False)
