"""The Viber Channels Post API: client, message builders, signature."""
