"""Events and webhooks: what happened in an account, told to ERPs and frontends, signed, at least once.

Receivers check deliveries with :func:`verify` (see the README's "Webhooks" section).
"""

from acorn_api.webhooks.signing import verify

__all__ = ["verify"]
