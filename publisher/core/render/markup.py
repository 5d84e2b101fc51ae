"""Viber's text formatting: making it, keeping it from happening by accident,
and showing it as Viber would.

Viber (14.6 and later, per its "Text Formatting" page) renders ``*bold*``,
``_italic_``, ``~strike~`` and ```` ```monospace``` ```` in messages from
bots; a space (or the end) must follow the closing symbol. The rule this
module applies, and :func:`segments` renders (the preview and the local
channel), reads that page the safe way:

- the opening symbol starts the text or follows whitespace, and is followed
  by a non-space;
- the closing symbol follows a non-space and is followed by whitespace or
  the end; ``*``, ``_`` and ``~`` runs stay on one line, ```` ``` ```` runs
  may span lines;
- runs do not nest (the first run found wins).

Text from feeds can hold such runs by accident (``*nix and *BSD* ``,
``_init_``): :func:`neutralise` puts a WORD JOINER (U+2060, invisible) after
the closing symbol, so that it is no longer followed by a space.

Formatting is built with private-use sentinels (:data:`BOLD` ...) while a
body is written, then :func:`finish` turns the sentinels into Viber's symbols
(``format = "viber"``) or removes them (``"plain"``), dropping a pair Viber
would not render (``word*bold*`` would show its asterisks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BOLD",
    "ITALIC",
    "MONO",
    "SENTINELS",
    "STRIKE",
    "Mark",
    "finish",
    "neutralise",
    "segments",
    "strip_sentinels",
    "to_html",
]

Style = Literal["bold", "italic", "strike", "mono"]

#: (opening sentinel, closing sentinel) for each style, while a text is built.
BOLD = ("\ue001", "\ue002")
ITALIC = ("\ue003", "\ue004")
STRIKE = ("\ue005", "\ue006")
MONO = ("\ue007", "\ue008")
_SYMBOL = {BOLD: "*", ITALIC: "_", STRIKE: "~", MONO: "```"}
_OPENERS = {pair[0]: pair for pair in _SYMBOL}
_CLOSERS = {pair[1]: pair for pair in _SYMBOL}
SENTINELS = "".join(ch for pair in _SYMBOL for ch in pair)
_SENTINEL_RE = re.compile(f"[{SENTINELS}]")
_STYLE_OF: dict[str, Style] = {"*": "bold", "_": "italic", "~": "strike", "```": "mono"}

WORD_JOINER = "\u2060"

#: One formatting run, as Viber reads it (see the module docstring).
_RUN = re.compile(
    r"(?<!\S)(?:```(?=\S)(?P<mono>.+?)(?<=\S)```"
    r"|(?P<sym>[*_~])(?=\S)(?P<body>[^\n]*?\S)(?P=sym))(?=\s|\Z)",
    re.DOTALL,
)
#: Punctuation that may move inside a closing symbol ("*Hello*," → "*Hello,*").
_TRAILING = ".,;:!?…"


@dataclass(frozen=True)
class Mark:
    """A formatting pair in a finished text: where its symbols start, and their width."""

    start: int
    end: int
    width: int


def neutralise(text: str) -> str:
    """``text`` with every run Viber would format made inert (a WORD JOINER
    after its closing symbol). Sentinels are left alone."""
    for _ in range(4):
        changed = _RUN.sub(lambda m: m.group() + WORD_JOINER, text)
        if changed == text:
            break
        text = changed
    return text


def strip_sentinels(text: str) -> str:
    return _SENTINEL_RE.sub("", text)


def finish(text: str, viber: bool) -> tuple[str, tuple[Mark, ...]]:
    """Turn the sentinels of ``text`` into Viber's symbols (``viber``) or drop
    them; return the text and where each pair of symbols is.

    Empty pairs go, punctuation right after a closing symbol moves inside it,
    and a pair Viber would not render (glued to a word, spanning lines) loses
    its symbols.
    """
    if not viber:
        return strip_sentinels(text), ()
    for pair in _SYMBOL:
        text = text.replace(pair[0] + pair[1], "")
        if pair != MONO:  # code keeps its own characters
            text = re.sub(f"{pair[1]}([{re.escape(_TRAILING)}]+)", f"\\1{pair[1]}", text)
    out: list[str] = []
    marks: list[Mark] = []
    pos = 0  # length of the output so far
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _CLOSERS:  # a closer without its opener
            i += 1
            continue
        if ch not in _OPENERS:
            out.append(ch)
            pos += len(ch)
            i += 1
            continue
        pair = _OPENERS[ch]
        j = text.find(pair[1], i + 1)
        if j < 0:
            i += 1
            continue
        inner = strip_sentinels(text[i + 1 : j])
        before = "".join(out)[-1:]
        after = text[j + 1 : j + 2]
        symbol = _SYMBOL[pair]
        renders = (
            bool(inner.strip())
            and not inner[0].isspace()
            and not inner[-1].isspace()
            and (not before or before.isspace())
            and (not after or after.isspace())
            and (symbol == "```" or "\n" not in inner)
        )
        if renders:
            out.append(symbol + inner + symbol)
            marks.append(Mark(pos, pos + len(symbol) + len(inner), len(symbol)))
            pos += len(inner) + 2 * len(symbol)
        else:
            out.append(inner)
            pos += len(inner)
        i = j + 1
    return "".join(out), tuple(marks)


def segments(text: str) -> list[tuple[str, Style | None]]:
    """``text`` as Viber would show it: pieces of text, each with its style
    (None for plain), the symbols of each run removed."""
    out: list[tuple[str, Style | None]] = []
    pos = 0
    for m in _RUN.finditer(text):
        if m.start() > pos:
            out.append((text[pos : m.start()], None))
        if m.group("mono") is not None:
            out.append((m.group("mono"), "mono"))
        else:
            out.append((m.group("body"), _STYLE_OF[m.group("sym")]))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], None))
    return out


_HTML_TAG: dict[Style, str] = {"bold": "b", "italic": "i", "strike": "s", "mono": "code"}


def to_html(text: str) -> str:
    """``text`` as escaped HTML with Viber's formatting shown (``<b>``, ``<i>``,
    ``<s>``, ``<code>``), for the preview page and the local channel."""
    import html

    out: list[str] = []
    for piece, style in segments(text):
        escaped = html.escape(piece)
        if style is None:
            out.append(escaped)
        else:
            tag = _HTML_TAG[style]
            out.append(f"<{tag}>{escaped}</{tag}>")
    return "".join(out)
