"""How a source wants its text written: the render settings of one source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LINK_MODES", "TEXT_FORMATS", "TEXT_OVERFLOWS", "TextStyle"]

LinkMode = Literal["inline", "footnotes", "drop"]
TextFormat = Literal["plain", "viber"]
TextOverflow = Literal["split", "truncate"]
LINK_MODES: tuple[LinkMode, ...] = ("inline", "footnotes", "drop")
TEXT_FORMATS: tuple[TextFormat, ...] = ("plain", "viber")
TEXT_OVERFLOWS: tuple[TextOverflow, ...] = ("split", "truncate")


@dataclass(frozen=True)
class TextStyle:
    #: Links inside the text: ``text (URL)``, ``text [1]`` with a list at the end, or text only.
    links: LinkMode = "inline"
    #: Remove tracking parameters (``utm_*``, ``fbclid``...) from posted URLs.
    clean_links: bool = True
    #: ``"viber"``: the title bold, ``<b>``/``<i>``/``<s>``/``<code>`` as Viber's markup.
    format: TextFormat = "plain"
    #: At most this many ``{hashtags}``.
    max_hashtags: int = 5

    @property
    def viber(self) -> bool:
        return self.format == "viber"
