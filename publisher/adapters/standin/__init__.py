"""A faithful stand-in for Viber's Channels Post API, as a component.

No live Viber server is reachable from development machines or CI, so this
package answers like ``https://chatapi.viber.com/pa`` does, following
``docs/viber-api.md``: ``get_account_info`` (POST or GET), ``set_webhook``
(with Viber's signed test call to the URL, which must answer 200) and
``post`` with every documented check, including fetching the picture,
thumbnail and video URLs the way Viber does. Faults (HTTP 500, any status,
slow answers, dropped connections) can be planned with ``fail_next``.

It holds no rule of Viber's of its own: a post's payload is judged by
:func:`publisher.core.messages.validate_payload` (the check the publisher
makes before it sends), the media it fetches against
:mod:`publisher.core.limits` and the core's video check. Only what concerns
one channel (token, webhook, the sender's role) is decided here.

It is used by the tests and, with ``viber.api_url = "local"``, as the
product's embedded local channel::

    with ViberStandIn("token").serve() as standin:
        client = ChannelClient("token", api_url=standin.api_url)

``python -m publisher.adapters.standin --token T --port 8099`` runs one by hand.
"""

from publisher.adapters.standin.media import MediaFetcher, MediaRefused
from publisher.adapters.standin.server import (
    ADMIN_ID,
    CHAT_HOSTNAME,
    DEFAULT_MEMBERS,
    FAULT_KINDS,
    SUPERADMIN_ID,
    Fault,
    PostRecord,
    RequestRecord,
    ViberStandIn,
)

__all__ = [
    "ADMIN_ID",
    "CHAT_HOSTNAME",
    "DEFAULT_MEMBERS",
    "FAULT_KINDS",
    "SUPERADMIN_ID",
    "Fault",
    "MediaFetcher",
    "MediaRefused",
    "PostRecord",
    "RequestRecord",
    "ViberStandIn",
]
