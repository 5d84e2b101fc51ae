"""The Channels Post API client: every call a POST of JSON, with timeouts.

One place turns what Viber answers into exceptions (:func:`check_answer`) and
one place turns httpx's failures into ours (:meth:`ChannelClient._call`):

- the request never left (connect error or timeout, pool timeout, bad URL)
  → :class:`ViberConnectError`: safe to send again;
- it left but no usable answer came back (read timeout, dropped connection,
  a 200 whose body is not Viber's JSON) → :class:`ViberAmbiguousError`: the
  post may be out, do not blindly send it again;
- an HTTP error status → :class:`ViberHTTPError` (retryable when 5xx/429);
- an answer that shows ``api_url`` does not lead to Viber — 404 or 405 (no
  such endpoint there), a redirect, or a ``get_account_info`` (which changes
  nothing) answered by something other than Viber's JSON →
  :class:`WrongAPIURLError`: nothing was posted, the configuration is wrong;
- a non-zero ``status`` → the :class:`ViberAPIError` subclass of the table in
  ``docs/viber-api.md``.

The token goes both in the ``X-Viber-Auth-Token`` header and as
``auth_token`` in the body; it never appears in a message, a repr or a log.
``message_token`` is kept as an exact int (Python's json keeps int64 exact;
a string of digits is accepted too).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from publisher import __version__
from publisher.adapters.tls import tls_context
from publisher.adapters.viber import signature
from publisher.config import resolve_token
from publisher.core.config import DEFAULT_API_URL, ViberConfig
from publisher.core.errors import (
    RateLimitedError,
    SenderError,
    ViberAmbiguousError,
    ViberAPIError,
    ViberConnectError,
    ViberError,
    ViberFatalError,
    ViberGeneralError,
    ViberHTTPError,
    ViberRejectedError,
    WebhookNotSetError,
    WebhookRefusedError,
    WrongAPIURLError,
)
from publisher.core.messages import (
    Message,
    check_request_size,
    payload_json,
    validate_payload,
)
from publisher.core.records import AccountInfo, Member, PostResult
from publisher.logs import register_secret

__all__ = [
    "DEFAULT_API_URL",
    "STATUS_NAMES",
    "ChannelClient",
    "check_answer",
    "error_for_status",
    "parse_message_token",
    "wrong_api_url",
]

log = logging.getLogger("publisher.adapters.viber")

AUTH_HEADER = "X-Viber-Auth-Token"
SIGNATURE_HEADER = "X-Viber-Content-Signature"
USER_AGENT = f"viber-publisher/{__version__}"

STATUS_NAMES: dict[int, str] = {
    0: "ok",
    1: "invalidUrl",
    2: "invalidAuthToken",
    3: "badData",
    4: "missingData",
    5: "receiverNotRegistered",
    6: "receiverNotSubscribed",
    7: "publicAccountBlocked",
    8: "publicAccountNotFound",
    9: "publicAccountSuspended",
    10: "webhookNotSet",
    11: "receiverNoSuitableDevice",
    12: "tooManyRequests",
    13: "apiVersionNotSupported",
    14: "incompatibleWithVersion",
    15: "publicAccountNotAuthorized",
    16: "inchatReplyMessageNotAllowed",
    17: "publicAccountIsNotInline",
    18: "noPublicChat",
    19: "cannotSendBroadcast",
    20: "broadcastNotAllowed",
    21: "unsupportedCountry",
    22: "paymentUnsupported",
    23: "freeMessagesExceeded",
    24: "noBalance",
}

#: HTTP statuses that say "no such endpoint here": the URL is wrong, nothing was done.
WRONG_URL_STATUSES = frozenset({404, 405})
#: Redirects that send the request elsewhere without acting on it (not 303).
REDIRECT_STATUSES = frozenset({301, 302, 307, 308})
#: Endpoints that change nothing: any answer that is not Viber's JSON means
#: the URL does not lead to Viber (for ``post`` it would be ambiguous).
READ_ONLY_ENDPOINTS = frozenset({"get_account_info"})

_DEFAULT_TOKEN_SOURCE = "the token configured by viber.token_env or viber.token_file"
_TOKEN_WHERE = "(Viber app: channel → Settings → Developer Tools)"


# --------------------------------------------------------------------------
# answers


def parse_message_token(value: object) -> int | None:
    """An int64 token from an int or a string of digits; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def error_for_status(
    status: int, status_message: str | None, token_source: str | None = None
) -> ViberAPIError:
    """The exception for a non-zero ``status`` (the table in docs/viber-api.md)."""
    where = token_source or _DEFAULT_TOKEN_SOURCE
    if status == 1:
        return WebhookRefusedError(
            status,
            status_message,
            "Viber refused the webhook URL: it must be HTTPS with a valid certificate, "
            "reachable from the internet, and answer Viber's test call with HTTP 200; "
            "check server.public_url and that the service is running",
        )
    if status == 2:
        return ViberFatalError(
            status,
            status_message,
            f"Viber refused the auth token; check the token in {where} {_TOKEN_WHERE}",
        )
    if status == 7:
        return ViberFatalError(
            status,
            status_message,
            "the channel is blocked; nothing can be posted. Check the channel in the Viber app",
        )
    if status == 8:
        return ViberFatalError(
            status,
            status_message,
            f"Viber found no channel for this token; check the token in {where} {_TOKEN_WHERE}",
        )
    if status == 9:
        return ViberFatalError(
            status,
            status_message,
            "the channel is suspended; nothing can be posted. Check the channel in the Viber app",
        )
    if status in (3, 4):
        return ViberRejectedError(
            status, status_message, "Viber refused this post; it is not sent again unchanged"
        )
    if status == 10:
        return WebhookNotSetError(
            status,
            status_message,
            "Viber accepts posts only once a webhook is set; run `viber-publisher webhook set` "
            "(server.public_url must answer with HTTP 200), then retry",
        )
    if status == 12:
        return RateLimitedError(status, status_message, "too many requests; back off and retry")
    if status in (5, 6, 11) or 13 <= status <= 24:
        name = STATUS_NAMES.get(status, "")
        return ViberRejectedError(
            status,
            status_message or name,
            "a bot-only error that should not happen for channels; the post failed",
        )
    return ViberGeneralError(
        status, status_message, "an unexpected Viber error; retried a few times, then failed"
    )


def wrong_api_url(
    url: str, http_status: int, *, location: str | None = None, detail: str = ""
) -> WrongAPIURLError:
    """The error for an answer that shows ``url`` is not Viber's API."""
    what = f"HTTP {http_status}"
    if location:
        what += f" (a redirect to {location})"
    what += detail
    if url.startswith(DEFAULT_API_URL + "/"):
        hint = (
            f"Viber's API does not answer as expected at {DEFAULT_API_URL} (a proxy in "
            "between?); check [viber] api_url and the network path to Viber"
        )
    else:
        hint = f"[viber] api_url is wrong; the Viber API is {DEFAULT_API_URL}"
    return WrongAPIURLError(f"{url} answered {what}: {hint}", url=url, http_status=http_status)


def check_answer(
    http_status: int,
    body: bytes,
    *,
    token_source: str | None = None,
    url: str = "the API URL",
    location: str | None = None,
    read_only: bool = False,
) -> dict[str, Any]:
    """The JSON answer when Viber said ``status 0``; else the matching exception.

    404, 405 and redirects raise :class:`WrongAPIURLError` (``url`` answered,
    and it is not Viber's API: nothing was posted); other HTTP error statuses
    raise :class:`ViberHTTPError`; a 2xx whose body is not a JSON object with
    a numeric ``status`` raises :class:`ViberAmbiguousError` (Viber got the
    request, so the post may be out) — or, for a ``read_only`` call, which
    cannot have done anything, :class:`WrongAPIURLError`.
    """
    if http_status in WRONG_URL_STATUSES or http_status in REDIRECT_STATUSES:
        raise wrong_api_url(
            url, http_status, location=location if http_status in REDIRECT_STATUSES else None
        )
    if not 200 <= http_status < 300:
        raise ViberHTTPError(
            f"Viber answered HTTP {http_status} instead of its JSON answer"
            + ("; retried later" if http_status >= 500 or http_status == 429 else ""),
            http_status,
        )
    try:
        answer, status = _viber_json(http_status, body)
    except ViberAmbiguousError as exc:
        if not read_only:
            raise
        raise wrong_api_url(
            url, http_status, detail=" with something that is not Viber's JSON"
        ) from exc
    if status != 0:
        message = answer.get("status_message")
        raise error_for_status(status, str(message) if message is not None else None, token_source)
    return answer


def _viber_json(http_status: int, body: bytes) -> tuple[dict[str, Any], int]:
    """Viber's JSON answer and its ``status``; ViberAmbiguousError if it is not one."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ViberAmbiguousError(
            f"Viber answered HTTP {http_status} with a body that is not JSON "
            f"({len(body)} bytes); the post may or may not be out"
        ) from exc
    if not isinstance(answer, dict):
        raise ViberAmbiguousError(
            f"Viber answered with JSON that is not an object ({type(answer).__name__}); "
            "the post may or may not be out"
        )
    raw_status = answer.get("status")
    status = parse_message_token(raw_status)
    if status is None:
        raise ViberAmbiguousError(
            f"Viber's answer has no numeric status ({raw_status!r}); the post may or may not be out"
        )
    return answer, status


# --------------------------------------------------------------------------
# the client


class ChannelClient:
    """A client of one channel's Post API (``api_url`` without a trailing ``/``)."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 15.0,
        sender_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
        *,
        token_source: str | None = None,
    ) -> None:
        if not token or not token.strip():
            raise ValueError("token: empty; give the channel's auth token")
        self._token = token.strip()
        register_secret(self._token)
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.sender_id = sender_id
        #: Where the token came from, for messages (never the token).
        self.token_source = token_source
        self._sender: str | None = None
        self._http = httpx.Client(
            transport=transport,
            verify=tls_context(),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={
                AUTH_HEADER: self._token,
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
            follow_redirects=False,
        )

    @classmethod
    def from_config(
        cls,
        viber: ViberConfig,
        env: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> ChannelClient:
        """A client as ``[viber]`` says; ConfigError when the token is missing."""
        return cls(
            resolve_token(viber, env),
            api_url=viber.api_url,
            timeout=viber.timeout.total_seconds(),
            sender_id=viber.sender_id,
            transport=transport,
            token_source=viber.token_source(),
        )

    def __repr__(self) -> str:
        return f"ChannelClient(api_url={self.api_url!r}, sender_id={self.sender_id!r})"

    # ---------------------------------------------------------------- calls

    def _call(self, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        data = dict(body)
        data["auth_token"] = self._token
        content = payload_json(data)
        check_request_size(len(content))
        url = f"{self.api_url}/{endpoint}"
        try:
            response = self._http.post(
                url,
                content=content,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ViberConnectError(
                f"could not connect to {self.api_url} ({type(exc).__name__}: {self._scrub(exc)}); "
                "nothing was sent"
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
            raise ViberConnectError(
                f"cannot send to {self.api_url} ({self._scrub(exc)}); check viber.api_url"
            ) from exc
        except httpx.TransportError as exc:
            # ReadTimeout, WriteTimeout, ReadError, WriteError, RemoteProtocolError...
            raise ViberAmbiguousError(
                f"{endpoint}: sent to {self.api_url} but no answer came back "
                f"({type(exc).__name__}: {self._scrub(exc) or 'no detail'}); "
                "the request may or may not have taken effect"
            ) from exc
        try:
            answer = check_answer(
                response.status_code,
                response.content,
                token_source=self.token_source,
                url=url,
                location=response.headers.get("location"),
                read_only=endpoint in READ_ONLY_ENDPOINTS,
            )
        except ViberError as exc:
            log.debug("viber %s failed: %s", endpoint, exc)
            raise
        log.debug("viber %s ok", endpoint)
        return answer

    def _scrub(self, value: object) -> str:
        return str(value).replace(self._token, "[redacted]")

    def get_account_info(self) -> AccountInfo:
        return AccountInfo.from_answer(self._call("get_account_info", {}))

    def superadmin(self, info: AccountInfo) -> Member:
        """The member posts are sent from: the configured ``sender_id`` (which must
        be a superadmin), else the first superadmin. SenderError when none fits."""
        channel = f"channel {info.name!r}" if info.name else "the channel"
        superadmins = info.superadmins
        listed = ", ".join(f"{m.id} ({m.name})" for m in superadmins) or "none"
        if self.sender_id is not None:
            for member in info.members:
                if member.id == self.sender_id:
                    if member.is_superadmin:
                        return member
                    raise SenderError(
                        f"viber.sender_id {self.sender_id!r} ({member.name}) is "
                        f"{member.role or 'a member without a role'} of {channel}, not a "
                        f"superadmin; Viber accepts posts only from superadmins. Set "
                        f"viber.sender_id to one of: {listed}"
                    )
            raise SenderError(
                f"viber.sender_id {self.sender_id!r} is not a member of {channel}; "
                f"set it to a superadmin's id (superadmins: {listed}), or remove it to use "
                "the first superadmin"
            )
        if not superadmins:
            raise SenderError(
                f"{channel} has no superadmin member in get_account_info; posts must come "
                "from a superadmin. Check the channel's admins in the Viber app"
            )
        return superadmins[0]

    def sender(self) -> str:
        """The sender's member id (asks Viber once, then remembers)."""
        if self._sender is None:
            self._sender = self.superadmin(self.get_account_info()).id
        return self._sender

    def set_webhook(self, url: str) -> dict[str, Any]:
        """Set the channel's webhook; Viber calls ``url`` at once and wants 200."""
        return self._call("set_webhook", {"url": url})

    def remove_webhook(self) -> dict[str, Any]:
        return self._call("set_webhook", {"url": ""})

    def post(
        self,
        message: Message | Mapping[str, Any],
        sender: str | None = None,
        *,
        validate: bool = True,
    ) -> PostResult:
        """Publish one message; ``validate=False`` skips the local limit checks
        of a payload dict (for tests of the server's own checks)."""
        if isinstance(message, Message):
            payload = message.to_payload()
        else:
            payload = {k: v for k, v in message.items() if k not in ("auth_token", "from")}
            if validate:
                validate_payload(payload)
        payload["from"] = sender if sender is not None else self.sender()
        answer = self._call("post", payload)
        hostname = answer.get("chat_hostname")
        return PostResult(
            message_token=parse_message_token(answer.get("message_token")),
            chat_hostname=str(hostname) if hostname is not None else None,
            raw=answer,
        )

    def verify_signature(self, body: bytes, signature_value: str | None) -> bool:
        """True when a callback's ``X-Viber-Content-Signature`` matches ``body``."""
        return signature.verify_signature(body, signature_value, self._token)

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChannelClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
