"""Every exception viber-publisher raises on purpose, in one small tree.

::

    PublisherError
    ├── ConfigError                 sources.toml or the environment is wrong (exit 2)
    ├── ViberError                  anything about talking to Viber
    │   ├── ViberTransportError     could not talk to Viber (retryable)
    │   │   ├── ViberConnectError   the request never left: safe to retry
    │   │   ├── ViberAmbiguousError sent, but no answer: the post may be out
    │   │   └── ViberHTTPError      an HTTP error status (5xx etc.) instead of JSON
    │   ├── WrongAPIURLError        viber.api_url answers, but not as Viber (404, 405,
    │   │                           a redirect): nothing was posted; fix the config (exit 2)
    │   ├── ViberAPIError           Viber answered with a non-zero ``status``
    │   │   ├── ViberFatalError     2, 7, 8, 9: stop posting, tell the operator
    │   │   ├── ViberRejectedError  3, 4 (and bot-only codes): never retry unchanged
    │   │   ├── WebhookRefusedError 1: the webhook URL was refused
    │   │   ├── WebhookNotSetError  10: set the webhook, then retry
    │   │   ├── RateLimitedError    12: back off
    │   │   └── ViberGeneralError   any other status: retry a few times
    │   └── SenderError             no superadmin / configured sender is not one
    ├── MessageError                a message breaks a documented limit (before sending)
    ├── SourceError                 a source could not be fetched or parsed
    │   └── FetchError              the server answered with an error (status, Retry-After)
    ├── MediaError                  media could not be fetched or made compliant
    └── StoreError                  the state cannot be used (damaged, newer schema, unknown post)
        └── TransitionError         an outbox row is not in a status the change starts from

Errors a user can cause carry a message that says what to do.
``MessageError`` is also a ``ValueError``; ``WrongAPIURLError`` is also a
``ConfigError``. What each means for a post: :mod:`publisher.core.outcomes`.
"""

from __future__ import annotations

from datetime import timedelta


class PublisherError(Exception):
    """Root of every exception raised on purpose by viber-publisher."""


class ConfigError(PublisherError):
    """The configuration is wrong. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str] | str) -> None:
        if isinstance(problems, str):
            problems = [problems]
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


class ViberError(PublisherError):
    """Something went wrong while talking to Viber."""

    #: True when sending the same request again later may succeed.
    retryable: bool = False


class ViberTransportError(ViberError):
    """Viber could not be reached, or its answer could not be read."""

    retryable = True


class ViberConnectError(ViberTransportError):
    """The request was not sent (DNS, refused connection, connect timeout)."""


class ViberAmbiguousError(ViberTransportError):
    """The request was sent but no answer came back (read timeout, dropped
    connection): the post may or may not have been published."""


class ViberHTTPError(ViberTransportError):
    """Viber answered with an HTTP error status instead of a JSON body."""

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.retryable = http_status >= 500 or http_status == 429


class WrongAPIURLError(ViberError, ConfigError):
    """``viber.api_url`` does not lead to Viber's API: an endpoint answered
    404 or 405, redirected, or ``get_account_info`` answered with something
    that is not Viber's JSON. The request was not taken as a post (nothing
    was posted); retrying cannot help, the configuration must change."""

    def __init__(self, message: str, *, url: str, http_status: int) -> None:
        super().__init__(message)
        #: The URL that answered (never carries the token).
        self.url = url
        self.http_status = http_status


class ViberAPIError(ViberError):
    """Viber answered with a non-zero ``status`` in the body."""

    def __init__(self, status: int, status_message: str | None, hint: str = "") -> None:
        self.status = status
        self.status_message = status_message or ""
        self.hint = hint
        text = f"Viber status {status}"
        if self.status_message:
            text += f" ({self.status_message})"
        if hint:
            text += f": {hint}"
        super().__init__(text)


class ViberFatalError(ViberAPIError):
    """Token refused or account blocked/not found/suspended: stop posting."""


class ViberRejectedError(ViberAPIError):
    """Viber refused this payload: do not send it again unchanged."""


class WebhookRefusedError(ViberAPIError):
    """Viber refused the webhook URL (status 1)."""


class WebhookNotSetError(ViberAPIError):
    """Posting needs a webhook to be set first (status 10)."""

    retryable = True


class RateLimitedError(ViberAPIError):
    """Too many requests (status 12): back off and retry later."""

    retryable = True


class ViberGeneralError(ViberAPIError):
    """Any other non-zero status: retry a few times, then fail."""

    retryable = True


class SenderError(ViberError):
    """No usable superadmin sender for the channel."""


class MessageError(PublisherError, ValueError):
    """A message breaks one of the Post API's documented limits."""


class MissingField(MessageError):
    """A field the message requires is missing (Viber's status 4, ``missingData``)."""


class SourceError(PublisherError):
    """A source could not be fetched or parsed."""


class FetchError(SourceError):
    """A feed could not be fetched. ``status`` is the HTTP status when the
    server answered with an error; ``retry_after`` is how long it asked us
    to wait (429/503 with ``Retry-After``), if it did."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.retry_after = retry_after


class MediaError(PublisherError):
    """Media could not be fetched, decoded or made to fit Viber's limits."""


class StoreError(PublisherError):
    """The database cannot be used (missing, newer schema, unknown post...)."""


class StateNotCreatedYet(StoreError):
    """The state exists but holds nothing yet: a service is creating it (its
    first set-up has not committed), so there is nothing to read."""


class TransitionError(StoreError):
    """An outbox row is not in a status the requested change starts from."""
