"""Plain-text primitives: UTF-16 length, grapheme clusters, truncation, clean-up.

Viber does not say how it counts characters; we count UTF-16 code units (what
its Java/JavaScript clients count), which is never less than the number of code
points, so staying under a limit in UTF-16 stays under it in any reading.

Python 3.11 has no grapheme segmentation in the standard library (and the
``regex`` package is not a dependency), so :func:`grapheme_boundaries`
implements the rules of Unicode UAX #29 that matter for cutting text: CR LF,
combining and spacing marks, emoji modifiers and tag sequences, emoji ZWJ
sequences, regional-indicator (flag) pairs, Hangul syllables, and surrogate
pairs that reached a ``str`` unjoined. Prepend characters and the Unicode 15.1
Indic conjunct rule are not handled.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from itertools import pairwise

# The project's one UTF-16 length lives with Viber's limits; re-exported here.
from publisher.core.messages import utf16_len

__all__ = [
    "clean_plain_text",
    "grapheme_boundaries",
    "graphemes",
    "normalize_blank_lines",
    "split_text",
    "truncate",
    "utf16_len",
]


# --------------------------------------------------------------------------
# Grapheme clusters (UAX #29, the parts that matter here)

_OTHER, _CR, _LF, _CONTROL, _EXTEND, _ZWJ, _RI, _SPACING = range(8)
_L, _V, _T, _LV, _LVT, _HIGH, _LOW = range(8, 15)

_PREPENDED_CONCATENATION = frozenset(
    {0x0600, 0x0601, 0x0602, 0x0603, 0x0604, 0x0605, 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2}
    | {0x110BD, 0x110CD}
)

# Extended_Pictographic, close enough for segmentation (emoji blocks and the
# older symbols that have emoji presentations).
_EXT_PICT = """
00A9 00AE 203C 2049 2122 2139 2194-2199 21A9-21AA 231A-231B 2328 2388 23CF 23E9-23F3
23F8-23FA 24C2 25AA-25AB 25B6 25C0 25FB-25FE 2600-27BF 2934-2935 2B05-2B07 2B1B-2B1C
2B50 2B55 3030 303D 3297 3299 1F000-1F0FF 1F10D-1F10F 1F12F 1F16C-1F171 1F17E-1F17F
1F18E 1F191-1F19A 1F1AD-1F1E5 1F201-1F20F 1F21A 1F22F 1F232-1F23A 1F23C-1F23F
1F249-1F3FA 1F400-1F53D 1F546-1F64F 1F680-1F6FF 1F774-1F77F 1F7D5-1F7FF 1F80C-1F80F
1F848-1F84F 1F85A-1F85F 1F888-1F88F 1F8AE-1F8FF 1F90C-1F93A 1F93C-1F945 1F947-1FAFF
1FC00-1FFFD
"""
_EXT_PICT_RANGES: tuple[tuple[int, int], ...] = tuple(
    (int(lo, 16), int(hi or lo, 16))
    for lo, _, hi in (span.partition("-") for span in _EXT_PICT.split())
)


def _is_ext_pict(cp: int) -> bool:
    if cp < 0xA9:
        return False
    return any(lo <= cp <= hi for lo, hi in _EXT_PICT_RANGES)


@lru_cache(maxsize=4096)
def _gcb(ch: str) -> int:
    """The Grapheme_Cluster_Break class of one code point (simplified)."""
    cp = ord(ch)
    if cp == 0x0D:
        return _CR
    if cp == 0x0A:
        return _LF
    if cp == 0x200D:
        return _ZWJ
    if 0x1F1E6 <= cp <= 0x1F1FF:
        return _RI
    if 0xD800 <= cp <= 0xDBFF:
        return _HIGH
    if 0xDC00 <= cp <= 0xDFFF:
        return _LOW
    if (
        cp == 0x200C
        or 0xFF9E <= cp <= 0xFF9F
        or 0x1F3FB <= cp <= 0x1F3FF
        or 0xE0020 <= cp <= 0xE007F
    ):
        return _EXTEND
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C:
        return _L
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7C6:
        return _V
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FB:
        return _T
    if 0xAC00 <= cp <= 0xD7A3:
        return _LV if (cp - 0xAC00) % 28 == 0 else _LVT
    category = unicodedata.category(ch)
    if category in ("Mn", "Me"):
        return _EXTEND
    if category == "Mc":
        return _SPACING
    if category in ("Cc", "Zl", "Zp"):
        return _CONTROL
    if category == "Cf" and cp not in _PREPENDED_CONCATENATION:
        return _CONTROL
    return _OTHER


_NO_BREAK_AFTER_L = frozenset({_L, _V, _LV, _LVT})
_HANGUL_V_FOLLOW = frozenset({_V, _T})
_BREAK_ALWAYS = frozenset({_CR, _LF, _CONTROL})


def grapheme_boundaries(s: str) -> list[int]:
    """Indices (in code points) where ``s`` may be cut without splitting a
    user-perceived character; always includes ``0`` and ``len(s)``."""
    if not s:
        return [0]
    bounds = [0]
    prev = _gcb(s[0])
    pict_run = _is_ext_pict(ord(s[0]))  # ExtPict Extend* so far
    zwj_after_pict = False
    ri_run = 1 if prev == _RI else 0
    for i in range(1, len(s)):
        ch = s[i]
        cur = _gcb(ch)
        cur_pict = _is_ext_pict(ord(ch))
        join = (prev == _CR and cur == _LF) or (
            prev not in _BREAK_ALWAYS
            and cur not in _BREAK_ALWAYS
            and (
                (prev == _HIGH and cur == _LOW)  # a surrogate pair left unjoined
                or (prev == _L and cur in _NO_BREAK_AFTER_L)  # GB6-8: Hangul
                or (prev in (_LV, _V) and cur in _HANGUL_V_FOLLOW)
                or (prev in (_LVT, _T) and cur == _T)
                or cur in (_EXTEND, _ZWJ, _SPACING)  # GB9, GB9a
                or (prev == _ZWJ and zwj_after_pict and cur_pict)  # GB11: emoji ZWJ
                or (prev == _RI and cur == _RI and ri_run % 2 == 1)  # GB12/13: flags
            )
        )
        if not join:
            bounds.append(i)
        # State for the rules that look further back (GB11, GB12/13).
        zwj_after_pict = cur == _ZWJ and pict_run
        if cur_pict:
            pict_run = True
        elif cur != _EXTEND:
            pict_run = False
        ri_run = ri_run + 1 if cur == _RI else 0
        prev = cur
    bounds.append(len(s))
    return bounds


def graphemes(s: str) -> list[str]:
    """``s`` split into user-perceived characters."""
    bounds = grapheme_boundaries(s)
    return [s[a:b] for a, b in pairwise(bounds)]


# --------------------------------------------------------------------------
# Truncation

_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
#: What a cut never falls inside: a URL written in the text, a footnote mark ``[12]``.
PROTECTED = re.compile(
    r"\(https?://[^\s<>\"']+?\)(?=[\s.,;:!?]|\Z)"
    r"|https?://[^\s<>\"'\u2060]*[^\s<>\"'.,;:!?)\]}»”’\u2060]"
    r"|\[\d{1,4}\]",
    re.IGNORECASE,
)
_URL_AT_END = re.compile(r"https?://\S+\Z", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?…]['\"’”»)\]]*(?=\s)|[。！？][」』”’）]*|\n")
_WORD_GAP = re.compile(r"\s")

#: How far back from the hard cut a sentence end or a word gap may lie and
#: still be preferred, as a fraction of the room and an absolute cap.
_SENTENCE_REACH = (4, 300)
_WORD_REACH = (2, 40)


def _entity_start(s: str, k: int) -> int:
    """If index ``k`` falls inside an HTML entity, the entity's start; else ``k``."""
    for m in _ENTITY.finditer(s, max(0, k - 40), min(len(s), k + 40)):
        if m.start() < k < m.end():
            return m.start()
        if m.start() >= k:
            break
    return k


def _protected_start(text: str, k: int, protect: re.Pattern[str] | None) -> int:
    """If index ``k`` falls inside a protected span (a URL), the span's start; else ``k``."""
    if protect is None or k <= 0 or k >= len(text):
        return k
    for m in protect.finditer(text, max(0, k - 2100), min(len(text), k + 2100)):
        if m.start() < k < m.end():
            return m.start()
        if m.start() >= k:
            break
    return k


def truncate(
    text: str, limit: int, ellipsis: str = "…", protect: re.Pattern[str] | None = PROTECTED
) -> str:
    """Cut ``text`` so that its :func:`utf16_len` is at most ``limit``.

    Returns ``text`` unchanged when it fits. Otherwise cuts at the last
    sentence end (or line break) reasonably near the limit, else at the last
    word gap, else at a grapheme boundary (never splitting a surrogate pair,
    an emoji ZWJ sequence, a flag, a base from its combining marks, or an HTML
    entity such as ``&amp;``), drops trailing whitespace and appends
    ``ellipsis``. A cut never falls inside a match of ``protect`` (by
    default a URL or a footnote mark): the URL goes whole, with an opening
    bracket left before it. The result is always a prefix of ``text`` plus ``ellipsis``;
    when not even the ellipsis fits, the result is a bare prefix.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    if utf16_len(text) <= limit:
        return text
    room = limit - utf16_len(ellipsis)
    if room < 0:
        ellipsis, room = "", limit

    # The longest prefix, cut at a grapheme boundary, that fits in ``room``.
    hard = 0
    used = 0
    # A prefix of ``room + 2`` code points holds every boundary that can fit
    # (each code point is at least one unit); segmenting it alone is the same.
    bounds = grapheme_boundaries(text[: room + 2])
    for a, b in pairwise(bounds):
        used += utf16_len(text[a:b])
        if used > room:
            break
        hard = b
    hard = _entity_start(text, hard)

    cut = hard
    keep_space = False
    sentence_floor = hard - min(hard // _SENTENCE_REACH[0], _SENTENCE_REACH[1])
    word_floor = hard - min(hard // _WORD_REACH[0], _WORD_REACH[1])
    sentence = -1
    for m in _SENTENCE_END.finditer(text, 0, min(len(text), hard + 1)):
        end = m.start() if m.group() == "\n" else m.end()
        if end <= hard:
            sentence = end
    if sentence > 0 and sentence >= sentence_floor:
        cut = sentence
        if ellipsis and cut < hard and text[cut] == " ":
            cut += 1  # "First sentence. …" reads better than "sentence.…"
            keep_space = True
    elif hard < len(text) and not text[hard].isspace():
        gap = -1
        for m in _WORD_GAP.finditer(text, word_floor, hard):
            gap = m.start()
        if gap > 0:
            cut = gap
    protected = _protected_start(text, cut, protect)
    moved = protected != cut
    if moved:
        cut = protected
        keep_space = False
    if cut not in set(bounds):  # e.g. "。" followed by a combining mark
        cut = max(b for b in bounds if b <= cut)
        keep_space = False
    prefix = text[:cut] if keep_space else text[:cut].rstrip()
    if moved:
        prefix = prefix.rstrip().rstrip("([").rstrip()
    if protect is not None and ellipsis:
        tail = _URL_AT_END.search(prefix)
        if tail is not None:  # "…" glued to a URL could be read as part of it
            if utf16_len(prefix) + 1 + utf16_len(ellipsis) <= limit:
                ellipsis = " " + ellipsis
            else:
                prefix = prefix[: tail.start()].rstrip().rstrip("([").rstrip()
    return prefix + ellipsis


# --------------------------------------------------------------------------
# Clean-up of plain text

#: Spaces that should read as an ordinary space (no-break, thin, figure...).
_SPACES = re.compile("[\u00a0\u2000-\u200a\u202f\u205f]")
#: Invisible characters that only get in the way (zero-width space, BOM, word
#: joiner, soft hyphen, Mongolian vowel separator), and the bidirectional
#: overrides and isolates (U+202A-U+202E, U+2066-U+2069) that can make text
#: read differently from what it says. ZWJ/ZWNJ are kept: emoji sequences and
#: Persian/Indic text need them.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u00ad\u180e\u202a-\u202e\u2066-\u2069]")
_BLANK_RUN = re.compile(r"\n{3,}")


def normalize_blank_lines(text: str) -> str:
    """Drop trailing spaces on every line, keep at most one blank line in a row,
    and strip blank lines at both ends."""
    lines = [line.rstrip() for line in text.split("\n")]
    return _BLANK_RUN.sub("\n\n", "\n".join(lines)).strip("\n")


def clean_plain_text(text: str) -> str:
    """Tidy text that is already plain: unify line ends, turn no-break and
    other odd spaces into spaces, drop zero-width junk and control characters,
    and normalise blank lines. Line breaks are kept."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", _SPACES.sub(" ", text))
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    text = text.replace("\t", " ")
    return normalize_blank_lines(text)


# --------------------------------------------------------------------------
# Splitting a long text into several posts


def _fitting_prefix(text: str, room: int) -> int:
    """The longest prefix of ``text`` (in code points, at a grapheme boundary)
    whose UTF-16 length is at most ``room``."""
    hard = 0
    used = 0
    bounds = grapheme_boundaries(text[: room + 2])
    for a, b in pairwise(bounds):
        used += utf16_len(text[a:b])
        if used > room:
            break
        hard = b
    return hard


def _split_point(text: str, hard: int, protect: re.Pattern[str] | None) -> int:
    """Where to end a part of at most ``hard`` code points: a paragraph break,
    a line break, a sentence end, a word gap, else ``hard``; never in a URL."""
    window = text[:hard]
    half = hard // 2
    cut = -1
    for sep in ("\n\n", "\n"):
        found = window.rfind(sep)
        if found > half:
            cut = found
            break
    if cut < 0:
        for m in _SENTENCE_END.finditer(window):
            end = m.start() if m.group() == "\n" else m.end()
            if end > half:
                cut = end
    if cut < 0:
        gap = max(window.rfind(" "), window.rfind("\t"))
        cut = gap if gap > hard // 4 else hard
    protected = _protected_start(text, cut, protect)
    return protected if protected > 0 else cut


def split_text(text: str, limit: int, protect: re.Pattern[str] | None = PROTECTED) -> list[str]:
    """``text`` as parts of at most ``limit`` UTF-16 units each, cut at
    paragraph, line, sentence or word boundaries (never inside a URL), each
    marked ``(1/3) ``; ``[text]`` when it fits as it is."""
    if utf16_len(text) <= limit:
        return [text]
    digits = 1
    while True:
        room = limit - (2 * digits + 4)  # "(99/99) "
        if room < 1:
            raise ValueError(f"limit {limit} is too small to split into marked parts")
        parts: list[str] = []
        rest = text.strip()
        while utf16_len(rest) > room:
            hard = _fitting_prefix(rest, room)
            cut = _split_point(rest, hard, protect) if hard < len(rest) else hard
            piece = rest[:cut].rstrip()
            if not piece:  # nothing fits before a protected span: cut hard
                cut = max(hard, 1)
                piece = rest[:cut]
            parts.append(piece)
            rest = rest[cut:].lstrip()
        if rest:
            parts.append(rest)
        if len(parts) < 10**digits:
            break
        digits += 1
    total = len(parts)
    return [f"({i}/{total}) {part}" for i, part in enumerate(parts, 1)]
