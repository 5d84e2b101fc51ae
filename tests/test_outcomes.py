"""The table from "what Viber answered" to "what happens to the post"
(publisher/core/outcomes.py): one row per exception class of
publisher/core/errors.py, and a check that no class is left out."""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest

from publisher.core import errors
from publisher.core.outcomes import MAX_RETRY_DELAY, Action, backoff_delay, outcome_of

RETRY, COOL_DOWN, HOLD, FAIL, STOP, SET_WEBHOOK = (
    Action.RETRY,
    Action.COOL_DOWN,
    Action.HOLD,
    Action.FAIL,
    Action.STOP,
    Action.SET_WEBHOOK,
)


def _wrong_url() -> errors.WrongAPIURLError:
    return errors.WrongAPIURLError(
        "https://x/pa/post answered HTTP 404: [viber] api_url is wrong; "
        "the Viber API is https://chatapi.viber.com/pa",
        url="https://x/pa/post",
        http_status=404,
    )


def _fetch_error() -> errors.PublisherError:
    # FetchError (a SourceError) takes the URL it could not fetch.
    cls = getattr(errors, "FetchError", errors.SourceError)
    if cls is errors.SourceError:
        return cls("feed broke")
    return cls("feed broke", url="https://feed.example/")  # type: ignore[call-arg]


# (exception, action, counts, maybe_sent, config, reraise)
ROWS: list[tuple[BaseException, Action, bool, bool, bool, bool]] = [
    # could not talk to Viber
    (errors.ViberError("odd"), RETRY, True, False, False, False),
    (errors.ViberTransportError("odd"), RETRY, True, False, False, False),
    (errors.ViberConnectError("refused; nothing was sent"), RETRY, True, False, False, False),
    (errors.ViberHTTPError("HTTP 503", 503), RETRY, True, False, False, False),
    (errors.ViberAmbiguousError("read timeout"), HOLD, True, True, False, False),
    # talked to something that is not Viber
    (_wrong_url(), STOP, False, False, True, False),
    # Viber said no
    (errors.ViberAPIError(99, "odd"), RETRY, True, False, False, False),
    (errors.ViberGeneralError(99, "odd"), RETRY, True, False, False, False),
    (errors.WebhookRefusedError(1, "invalidUrl"), RETRY, True, False, False, False),
    (errors.RateLimitedError(12, "tooManyRequests"), COOL_DOWN, True, False, False, False),
    (errors.ViberRejectedError(3, "badData"), FAIL, True, False, False, False),
    (errors.WebhookNotSetError(10, "webhookNotSet"), SET_WEBHOOK, False, False, False, False),
    (errors.ViberFatalError(2, "invalidAuthToken"), STOP, False, False, False, False),
    (errors.SenderError("no superadmin"), STOP, False, False, False, False),
    # before sending
    (errors.MessageError("text: over 7000 characters"), FAIL, True, False, False, False),
    (errors.MissingField("text.text: missing"), FAIL, True, False, False, False),
    (errors.ConfigError("token_env: not set"), STOP, False, False, True, False),
    # not answers: bugs while sending (the post may be out), re-raised
    (errors.PublisherError("?"), HOLD, True, True, False, True),
    (errors.SourceError("?"), HOLD, True, True, False, True),
    (_fetch_error(), HOLD, True, True, False, True),
    (errors.MediaError("?"), HOLD, True, True, False, True),
    (errors.StoreError("?"), HOLD, True, True, False, True),
    (errors.StateNotCreatedYet("?"), HOLD, True, True, False, True),
    (errors.TransitionError("?"), HOLD, True, True, False, True),
    (RuntimeError("boom"), HOLD, True, True, False, True),
    (KeyboardInterrupt(), HOLD, True, True, False, True),
]


@pytest.mark.parametrize(
    ("exc", "action", "counts", "maybe_sent", "config", "reraise"),
    ROWS,
    ids=[type(row[0]).__name__ for row in ROWS],
)
def test_outcome_table(
    exc: BaseException, action: Action, counts: bool, maybe_sent: bool, config: bool, reraise: bool
) -> None:
    outcome = outcome_of(exc)
    assert outcome.action is action
    assert (outcome.counts, outcome.maybe_sent, outcome.config, outcome.reraise) == (
        counts,
        maybe_sent,
        config,
        reraise,
    )
    assert str(exc) in outcome.reason


def test_every_error_class_has_a_row() -> None:
    classes = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.PublisherError)
    }
    assert classes <= {type(row[0]) for row in ROWS}


def test_ok_is_posted() -> None:
    assert outcome_of(None).action is Action.POSTED


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (errors.ViberRejectedError(3, "badData"), "refused by Viber: Viber status 3 (badData)"),
        (errors.MessageError("text: too long"), "refused: text: too long"),
        (RuntimeError("boom"), "interrupted while sending (RuntimeError: boom)"),
        (errors.RateLimitedError(12, None), "Viber status 12"),
    ],
)
def test_reasons(exc: BaseException, reason: str) -> None:
    assert outcome_of(exc).reason == reason


@pytest.mark.parametrize(
    ("exc", "reraise"),
    [(errors.ViberAmbiguousError("read timeout"), False), (RuntimeError("boom"), True)],
)
def test_on_unknown_retry_sends_again(exc: BaseException, reraise: bool) -> None:
    outcome = outcome_of(exc, on_unknown="retry")
    assert outcome.action is Action.RETRY
    assert outcome.maybe_sent and outcome.counts and outcome.reraise is reraise
    assert outcome.reason.startswith("fate unknown, sent again (on_unknown = retry): ")


@pytest.mark.parametrize(
    "exc",
    [errors.RateLimitedError(12, None), errors.ViberFatalError(2, None), _wrong_url()],
)
def test_on_unknown_changes_only_unknown_answers(exc: BaseException) -> None:
    assert outcome_of(exc, on_unknown="retry") == outcome_of(exc)


def test_a_new_subclass_takes_its_parents_row() -> None:
    class PaymentRefused(errors.ViberRejectedError):
        pass

    assert outcome_of(PaymentRefused(24, "noBalance")).action is Action.FAIL


@pytest.mark.parametrize(
    ("attempts", "jitter", "expected"),
    [
        (1, 1.0, timedelta(seconds=10)),
        (2, 1.0, timedelta(seconds=20)),
        (3, 0.8, timedelta(seconds=32)),
        (4, 1.2, timedelta(seconds=96)),
        (0, 1.0, timedelta(seconds=10)),
        (40, 1.0, MAX_RETRY_DELAY),
        (10_000, 1.2, MAX_RETRY_DELAY * 1.2),
    ],
)
def test_backoff_delay(attempts: int, jitter: float, expected: timedelta) -> None:
    assert backoff_delay(attempts, timedelta(seconds=10), jitter) == expected


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        (errors.ViberConnectError("connection refused; nothing was sent"), True),
        (errors.ViberHTTPError("HTTP 500", 500), True),
        (errors.ViberHTTPError("HTTP 503", 503), True),
        (errors.ViberHTTPError("HTTP 429", 429), False),
        (errors.ViberHTTPError("HTTP 403", 403), False),
        (errors.ViberAmbiguousError("read timeout"), False),  # may be out: held, not waited out
        (errors.ViberGeneralError(99, "odd"), False),
        (errors.RateLimitedError(12, "tooManyRequests"), False),
        (errors.ViberRejectedError(3, "badData"), False),
    ],
    ids=lambda v: (
        type(v).__name__ + str(getattr(v, "http_status", "")) if not isinstance(v, bool) else str(v)
    ),
)
def test_outages_are_told_apart(exc: BaseException, outage: bool) -> None:
    """Viber out of reach or failing (nothing sent) is an outage: the service
    waits it out with the channel held rather than failing posts."""
    outcome = outcome_of(exc)
    assert outcome.outage is outage
    if outage:
        assert outcome.action is Action.RETRY and not outcome.maybe_sent
