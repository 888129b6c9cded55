"""The HTTP API under /v1 (FastAPI): parties, keys, accounts, money, trades, events, webhooks.

Its names load on first use (`danbao.lazy`), so `danbao.client`, which needs only the wire
models, does not load the server."""

from danbao.lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "Services": "danbao.api.services",
    "create_app": "danbao.api.app",
})
