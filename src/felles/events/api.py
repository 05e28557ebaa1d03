"""Webhook subscriptions and the pull feed over HTTP, for a part to mount under its API.

`router_for("/api/portal/v1", "felles:portal.submissions", "no.felles.portal.", ...)`
gives the portal's agencies `/subscriptions` and `/events` for the portal's event types
only, guarded by the portal's scope; the mailbox mounts its own the same way.
"""

# No `from __future__ import annotations`: FastAPI must see each endpoint's annotations as
# objects, and `Agency` is local to `router_for`.
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from felles.events import service
from felles.events.runtime import events
from felles.events.webhooks import MAX_ENDPOINT_LENGTH, cloudevent
from felles.identity.guard import Caller, require_scopes
from felles.web.idempotency import once, request_fingerprint
from felles.web.problems import ProblemError

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", description="Retry safely: the same key gives one subscription."
    ),
]


class NewSubscription(BaseModel):
    """Where to POST events, and which."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(
        max_length=MAX_ENDPOINT_LENGTH,
        description="An https:// URL (http:// to localhost outside production), no credentials.",
        examples=["https://fagsystem.kommune.no/felles/webhooks"],
    )
    types: list[Annotated[str, Field(min_length=1, max_length=service.MAX_TYPE_LENGTH)]] = Field(
        min_length=1,
        max_length=service.MAX_TYPES,
        description="Event type prefixes; an event is sent if its type starts with one.",
        examples=[["no.felles.portal.submission."]],
    )


class SubscriptionOut(BaseModel):
    """A webhook subscription."""

    id: str = Field(description="The subscription's id.")
    endpoint: str
    types: list[str] = Field(description="Event type prefixes.")
    created_at: datetime
    disabled_at: datetime | None = Field(
        description="Set when deliveries kept failing; events are still in the pull feed."
    )
    consecutive_failures: int = Field(description="Deliveries given up on in a row.")


class CreatedSubscription(SubscriptionOut):
    secret: str = Field(
        description="The Standard Webhooks signing secret (whsec_...): shown only in this answer."
    )


class CloudEventOut(BaseModel):
    """A CloudEvents 1.0 event in its JSON form."""

    model_config = ConfigDict(extra="allow")

    specversion: str = "1.0"
    id: str
    source: str
    type: str
    subject: str | None = None
    time: str
    datacontenttype: str = "application/json"
    data: Any = None


class EventPage(BaseModel):
    """A page of the organisation's events, oldest first."""

    events: list[CloudEventOut]
    next_after: int = Field(description="Pass as `after` to get the events that follow.")


def _json(record: service.SubscriptionRecord, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = SubscriptionOut.model_validate(record, from_attributes=True).model_dump(
        mode="json"
    )
    if secret is not None:
        body["secret"] = secret
    return body


def _orgnr(caller: Caller) -> str:
    if not caller.orgnr:
        raise ProblemError("forbidden", "Only an organisation's machine token has events")
    return caller.orgnr


def router_for(prefix: str, scope: str, type_prefix: str, tag: str) -> APIRouter:
    """Subscriptions and the event feed under `prefix`, for event types starting with
    `type_prefix`, to callers holding `scope`."""
    router = APIRouter(prefix=prefix, tags=[tag])
    Agency = Annotated[Caller, Depends(require_scopes(scope))]

    @router.post(
        "/subscriptions",
        status_code=201,
        response_model=CreatedSubscription,
        summary="Subscribe to events by webhook",
    )
    async def create_subscription(
        new: NewSubscription,
        request: Request,
        caller: Agency,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Events whose type starts with one of `types` are POSTed to `endpoint` as
        CloudEvents, signed per Standard Webhooks with the secret in this answer."""
        orgnr = _orgnr(caller)
        rt = events(request)

        async def create(session: AsyncSession) -> tuple[int, Any]:
            try:
                record, secret = await service.add_subscription(
                    session,
                    orgnr,
                    new.endpoint,
                    new.types,
                    box=rt.box,
                    local_http=rt.local_http,
                    public_only=rt.public_only,
                    within=type_prefix,
                )
            except service.SubscriptionError as exc:
                raise ProblemError("validation", str(exc), field=exc.field) from None
            return 201, _json(record, secret)

        return await once(
            rt.db,
            caller=caller.client_id,
            key=idempotency_key,
            fingerprint=request_fingerprint("POST", request.url.path, new.model_dump()),
            create=create,
        )

    @router.get(
        "/subscriptions", response_model=list[SubscriptionOut], summary="List webhook subscriptions"
    )
    async def list_subscriptions(request: Request, caller: Agency) -> list[dict[str, Any]]:
        orgnr = _orgnr(caller)
        async with events(request).db.session() as session:
            found = await service.list_subscriptions(session, orgnr)
        return [_json(r) for r in found if all(t.startswith(type_prefix) for t in r.types)]

    @router.delete(
        "/subscriptions/{subscription_id}",
        status_code=204,
        response_class=Response,
        summary="Remove a webhook subscription",
    )
    async def delete_subscription(
        subscription_id: str, request: Request, caller: Agency
    ) -> Response:
        orgnr = _orgnr(caller)
        async with events(request).db.session() as session:
            try:
                await service.delete_subscription(session, orgnr, subscription_id)
            except service.NotFound:
                raise ProblemError("not-found", "No subscription with that id") from None
        return Response(status_code=204)

    @router.get("/events", response_model=EventPage, summary="Catch up on events")
    async def list_events(
        request: Request,
        caller: Agency,
        after: Annotated[
            int,
            Query(ge=0, le=2**63 - 1, description="Events after this `seq` (0: from the start)."),
        ] = 0,
        type: Annotated[
            list[str] | None,
            Query(description="Type prefixes (repeatable); default: all of this API's."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    ) -> dict[str, Any]:
        """The organisation's events, oldest first, for a receiver that missed webhooks
        or prefers to poll. Events are kept for FELLES_EVENTS_KEEP_DAYS."""
        orgnr = _orgnr(caller)
        try:
            types = service.check_types(type or [type_prefix], within=type_prefix)
        except service.SubscriptionError as exc:
            raise ProblemError("validation", str(exc), field="type") from None
        async with events(request).db.session(autocommit=True) as session:
            found, next_after = await service.events_after(session, orgnr, after, types, limit)
        rows = [
            {c: getattr(e, c) for c in ("event_id", "source", "type", "subject", "time", "data")}
            for e in found
        ]
        return {"events": [cloudevent(r) for r in rows], "next_after": next_after}

    return router
