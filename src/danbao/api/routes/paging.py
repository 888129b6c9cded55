"""How every list is paged: a bounded `limit`, and an opaque `after` cursor that the page
before handed out as `next_cursor` (null on the last page)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from danbao.errors import DanbaoError
from danbao.ledger import PAGE_LIMIT_MAX, ReadCode
from danbao.store.schema import is_bigint_text

Limit = Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)]
PAGE_DEFAULT = 100
# Lists in (created_at, id) order: trades, API keys, webhook endpoints, deliveries.
CreatedCursor = Annotated[str | None, Query(pattern="^[0-9]{1,20}:[A-Za-z0-9_.-]{1,64}$", description="next_cursor of the page before")]


def cursor(after: str | None, *shape: type) -> tuple[Any, ...] | None:
    """A cursor this server issued: one ':'-separated piece per type in `shape`; the int
    pieces are timestamps or sequence numbers, so no larger than a BIGINT column holds."""
    if after is None:
        return None
    pieces = after.split(":")
    if len(after) > 200 or len(pieces) != len(shape) or not all(kind is str or is_bigint_text(p) for kind, p in zip(shape, pieces)):
        raise DanbaoError("cursor is not one this server issued", field="after", code=ReadCode.cursor_invalid)
    return tuple(kind(p) for kind, p in zip(shape, pieces))


def created_cursor(found: list[Any], limit: int) -> str | None:
    """The cursor after the last of a full page of rows with `created_at` and `id`."""
    return f"{found[-1].created_at}:{found[-1].id}" if len(found) == limit else None
