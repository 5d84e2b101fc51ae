"""Item identity: which items are the same item (pure).

- :func:`normalise_link` makes two spellings of the same article URL equal
  (scheme and host case, default ports, tracking parameters, fragments).
- :func:`strip_tracking` removes only the tracking parameters from a URL
  that is posted (the one list of them: :data:`TRACKING_PARAMS`).
- :func:`item_key` picks an item's stable identity: its guid/id when it has a
  usable one, else its normalised link, else a hash of its content.
- :func:`content_hash` tells an edited item from the one seen before;
  :func:`comparable` says whether two such hashes were made the same way.
"""

from __future__ import annotations

import hashlib
from urllib.parse import unquote_plus, urlsplit, urlunsplit

#: Query parameters that only track where a click came from.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "yclid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "ref_src",
    }
)
TRACKING_PREFIXES = ("utm_",)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_link(url: str) -> str:
    """The canonical spelling of ``url`` for comparing links.

    Lowercases scheme and host, drops a default port, tracking parameters
    (``utm_*``, ``fbclid``, ``gclid``, ``mc_cid``, ``mc_eid``...), the
    fragment and a trailing ``?``; an empty path becomes ``/``. The order of
    the remaining parameters is kept (it can matter to the server). A string
    that is not an absolute URL comes back stripped and otherwise unchanged.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    if not parts.scheme or not parts.netloc:
        return text.split("#", 1)[0].rstrip("?")
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    netloc = f"{userinfo}@{host}" if userinfo else host
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        netloc += f":{port}"
    path = parts.path or ("/" if scheme in _DEFAULT_PORTS else "")
    segments = [seg for seg in parts.query.split("&") if seg]
    query = "&".join(seg for seg in segments if not _is_tracking(unquote_plus(seg.split("=")[0])))
    return urlunsplit((scheme, netloc, path, query, ""))


def _is_tracking(name: str) -> bool:
    lower = name.lower()
    return lower in TRACKING_PARAMS or lower.startswith(TRACKING_PREFIXES)


def strip_tracking(url: str) -> str:
    """``url`` without its tracking parameters (the same list as
    :func:`normalise_link`), otherwise as written: case, port, the order of
    the other parameters and the fragment are kept; a ``?`` left empty goes.
    A string that is not a URL with a query comes back unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query:
        return url
    segments = parts.query.split("&")
    kept = [seg for seg in segments if seg and not _is_tracking(unquote_plus(seg.split("=")[0]))]
    if len(kept) == len(segments):
        return url
    return urlunsplit(parts._replace(query="&".join(kept)))


def usable_guid(guid: str | None) -> str | None:
    """``guid`` stripped, or None when it cannot identify an item.

    Blank guids, absurdly long ones and the literal strings some generators
    emit for "no id" (``"null"``, ``"undefined"``, ``"0"``) are unusable.
    """
    if guid is None:
        return None
    text = guid.strip()
    if not text or len(text) > 2048 or text.lower() in {"null", "none", "undefined", "0", "-"}:
        return None
    return text


#: The start of an RSS/Atom item's content hash made over its body as the
#: feed gave it. States written before the mark existed hold hashes made over
#: the body as feedparser's sanitiser left it: such a hash cannot tell an edit
#: (see :func:`comparable`), and the poll stores the item's new one instead.
RAW_BODY = "raw:"


def comparable(stored: str, fresh: str) -> bool:
    """True when two content hashes were made the same way: only then does
    a difference mean the item was edited."""
    return stored.startswith(RAW_BODY) == fresh.startswith(RAW_BODY)


def content_hash(*parts: str | None) -> str:
    """A SHA-256 hex digest over the parts, each separated so that
    ``("ab", "c")`` and ``("a", "bc")`` differ."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update((part or "").encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def item_key(guid: str | None, link: str | None, title: str | None, body: str | None) -> str:
    """An item's stable identity within its source.

    ``"id:<guid>"`` when the guid is usable (see :func:`usable_guid`), else
    ``"link:<normalised link>"``, else ``"hash:<sha256 of title and body>"``.
    """
    usable = usable_guid(guid)
    if usable is not None:
        return f"id:{usable}"
    if link and link.strip():
        return f"link:{normalise_link(link)}"
    return "hash:" + content_hash(title, body)[:40]
