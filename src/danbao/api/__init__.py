"""The HTTP API under /v1 (FastAPI): parties, keys, accounts, money, trades, events, webhooks."""

from danbao.api.app import create_app
from danbao.api.services import Services

__all__ = ["Services", "create_app"]
