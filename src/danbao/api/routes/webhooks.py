"""Webhook endpoints a party registers, and the record of deliveries to each."""

from __future__ import annotations

from fastapi import APIRouter, Request

from danbao.api.auth import who
from danbao.api.body import StrictJsonRoute
from danbao.api.models import (
    DeliveryOut,
    DeliveryPage,
    NoBody,
    SecretRotationIn,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointPage,
)
from danbao.api.routes.paging import PAGE_DEFAULT, CreatedCursor, Limit, created_cursor, cursor
from danbao.api.webhooks import Endpoint


def _endpoint_out(e: Endpoint, *, secret: str | None = None) -> WebhookEndpointOut:
    return WebhookEndpointOut(
        id=e.id, url=e.url, event_types=e.event_types, secret=secret, created_at=e.created_at, disabled_at=e.disabled_at, previous_secret_until=e.previous_secret_until
    )


router = APIRouter(prefix="/v1", tags=["webhooks"], route_class=StrictJsonRoute)


@router.post("/webhook-endpoints", status_code=201, response_model=WebhookEndpointOut)
def register(body: WebhookEndpointIn, request: Request) -> WebhookEndpointOut:
    """Subscribe a URL to event types ("*" for all); the signing secret is shown once."""
    svc, caller = who(request)
    e = svc.webhooks.register(caller.id, body.url, [t.value for t in body.event_types])
    return _endpoint_out(e, secret=e.secret)


@router.get("/webhook-endpoints", response_model=WebhookEndpointPage)
def list_endpoints(request: Request, after: CreatedCursor = None, limit: Limit = PAGE_DEFAULT) -> WebhookEndpointPage:
    """The caller's endpoints, disabled ones too, oldest first."""
    svc, caller = who(request)
    found = svc.webhooks.endpoints(caller.id, after=cursor(after, int, str), limit=limit)
    return WebhookEndpointPage(data=[_endpoint_out(e) for e in found], next_cursor=created_cursor(found, limit))


@router.post("/webhook-endpoints/{endpoint_id}/disable", response_model=WebhookEndpointOut)
def disable(endpoint_id: str, request: Request, body: NoBody | None = None) -> WebhookEndpointOut:
    """Stop deliveries to the endpoint (pending ones are cancelled); its record stays listable."""
    svc, caller = who(request)
    return _endpoint_out(svc.webhooks.disable(caller.id, endpoint_id))


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=WebhookEndpointOut)
def rotate_secret(endpoint_id: str, request: Request, body: SecretRotationIn | None = None) -> WebhookEndpointOut:
    """A new signing secret, shown once. Deliveries are signed under the replaced secret too
    for `overlap_seconds` (a day by default), so the receiver can switch without refusing any."""
    svc, caller = who(request)
    options = body or SecretRotationIn()
    e = svc.webhooks.rotate_secret(caller.id, endpoint_id, overlap_seconds=options.overlap_seconds)
    return _endpoint_out(e, secret=e.secret)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries", response_model=DeliveryPage)
def deliveries(endpoint_id: str, request: Request, after: CreatedCursor = None, limit: Limit = PAGE_DEFAULT) -> DeliveryPage:
    """Every delivery to the endpoint, oldest first: attempts, last status code, next attempt."""
    svc, caller = who(request)
    found = svc.webhooks.deliveries(caller.id, endpoint_id, after=cursor(after, int, str), limit=limit)
    return DeliveryPage(
        data=[
            DeliveryOut(id=d.id, event_id=d.event_id, event_type=d.event_type, state=d.state, attempts=d.attempts, last_status_code=d.last_status_code,
                        last_error=d.last_error, next_attempt_at=d.next_attempt_at, created_at=d.created_at, updated_at=d.updated_at)
            for d in found
        ],
        next_cursor=created_cursor(found, limit),
    )
