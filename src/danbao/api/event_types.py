"""What each trade event is called on the wire: the event types webhooks subscribe to and
`/v1/events` lists. Plain data with no server behind it, so the client can name them too."""

from __future__ import annotations

from danbao.trade.model import TradeEvent

EVENT_TYPES = (
    "trade.created", "trade.paid", "trade.shipped", "trade.completed", "trade.refunded", "trade.closed",
    "trade.extended", "refund.requested", "refund.paid", "refund.refused", "trade.disputed",
    "claim.opened", "claim.upheld", "claim.rejected", "cod.collected", "cod.remitted", "cod.settled",
    "cod.refused", "cod.returned", "cod.remittance_late",
)
_BY_ACTION = {
    "extend": "trade.extended", "claim": "claim.opened", "uphold_claim": "claim.upheld", "reject_claim": "claim.rejected",
    "flag_late": "cod.remittance_late", "collect": "cod.collected", "remit": "cod.remitted", "settle": "cod.settled",
    "refuse": "cod.refused", "return_goods": "cod.returned", "request_refund": "refund.requested",
    "refuse_refund": "refund.refused", "dispute": "trade.disputed", "create": "trade.created",
}
_BY_STATUS = {"paid": "trade.paid", "shipped": "trade.shipped", "completed": "trade.completed", "refunded": "trade.refunded", "closed": "trade.closed"}


def event_type(event: TradeEvent) -> str:
    if event.action in _BY_ACTION:
        return _BY_ACTION[event.action]
    if event.action in ("agree_refund", "refund_timeout") and event.to_status == "shipped":
        return "refund.paid"
    return _BY_STATUS.get(event.to_status, f"trade.{event.to_status}")
