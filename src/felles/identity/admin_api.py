"""The login service's admin API: clients and scopes, for agencies' automation.

Authenticated with Felles' own machine tokens. Registering clients needs the operator
scope `felles:identity.admin`; an agency manages the scopes it owns (and who may use
them) with `felles:identity.scopes`, and only those it owns.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from felles.identity import clients
from felles.identity.clients import (
    ClientError,
    ClientRecord,
    ClientUpdate,
    NewClient,
    ScopeRecord,
    UnknownClient,
    UnknownScope,
)
from felles.identity.guard import Caller, require_scopes
from felles.identity.runtime import runtime
from felles.web.idempotency import once, request_fingerprint
from felles.web.problems import ProblemError

ADMIN_SCOPE = "felles:identity.admin"
SCOPES_SCOPE = "felles:identity.scopes"

router = APIRouter(prefix="/api/identity/v1", tags=["login service administration"])
Admin = Annotated[Caller, Depends(require_scopes(ADMIN_SCOPE))]
ScopeOwner = Annotated[Caller, Depends(require_scopes(SCOPES_SCOPE))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


class ClientOut(BaseModel):
    """A client as the API shows it; `client_secret` only in the answer that made it."""

    model_config = ConfigDict(extra="allow")

    client_id: str
    name: str


class NewScope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=500)
    for_people: bool = False
    for_machines: bool = True
    public: bool = False


def _client_json(client: ClientRecord, secret: str | None = None) -> dict[str, Any]:
    data = client.model_dump(mode="json")
    if secret is not None:
        data["client_secret"] = secret
    return data


def _problem(exc: ClientError) -> ProblemError:
    return ProblemError("validation", str(exc), field=exc.field)


async def _db_call(request: Request) -> Any:
    return (await runtime(request)).db


@router.post("/clients", status_code=201, response_model=ClientOut)
async def create_client(
    new: NewClient, request: Request, caller: Admin, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Register a client. The answer holds the client secret; it is never shown again."""

    async def create(session: AsyncSession) -> tuple[int, Any]:
        try:
            client, secret = await clients.add_client(session, new)
        except ClientError as exc:
            raise _problem(exc) from None
        return 201, _client_json(client, secret)

    return await once(
        await _db_call(request),
        caller=caller.client_id,
        key=idempotency_key,
        fingerprint=request_fingerprint("POST", request.url.path, new.model_dump()),
        create=create,
    )


@router.get("/clients")
async def list_clients(request: Request, caller: Admin) -> list[dict[str, Any]]:
    async with (await _db_call(request)).session() as session:
        return [_client_json(c) for c in await clients.list_clients(session)]


@router.get("/clients/{client_id}")
async def show_client(client_id: str, request: Request, caller: Admin) -> dict[str, Any]:
    async with (await _db_call(request)).session() as session:
        try:
            return _client_json(await clients.get_client(session, client_id, include_disabled=True))
        except UnknownClient:
            raise ProblemError("not-found", "No client with that id") from None


@router.patch("/clients/{client_id}")
async def change_client(
    client_id: str, change: ClientUpdate, request: Request, caller: Admin
) -> dict[str, Any]:
    async with (await _db_call(request)).session() as session:
        try:
            return _client_json(await clients.update_client(session, client_id, change))
        except UnknownClient:
            raise ProblemError("not-found", "No client with that id") from None
        except ClientError as exc:
            raise _problem(exc) from None


@router.post("/clients/{client_id}/disable")
async def disable_client(client_id: str, request: Request, caller: Admin) -> dict[str, Any]:
    async with (await _db_call(request)).session() as session:
        try:
            return _client_json(await clients.disable_client(session, client_id))
        except UnknownClient:
            raise ProblemError("not-found", "No client with that id") from None


@router.post("/clients/{client_id}/enable")
async def enable_client(client_id: str, request: Request, caller: Admin) -> dict[str, Any]:
    async with (await _db_call(request)).session() as session:
        try:
            return _client_json(await clients.enable_client(session, client_id))
        except UnknownClient:
            raise ProblemError("not-found", "No client with that id") from None


@router.post("/clients/{client_id}/secret")
async def rotate_secret(client_id: str, request: Request, caller: Admin) -> dict[str, Any]:
    """A new client secret (the old one stops working at once)."""
    async with (await _db_call(request)).session() as session:
        try:
            return {
                "client_id": client_id,
                "client_secret": await clients.new_secret(session, client_id),
            }
        except UnknownClient:
            raise ProblemError("not-found", "No client with that id") from None
        except ClientError as exc:
            raise _problem(exc) from None


# --- Scopes (an agency manages its own) -------------------------------------------------


def _owner(caller: Caller) -> str:
    if not caller.orgnr:
        raise ProblemError("forbidden", "Only an organisation's machine token can manage scopes")
    return caller.orgnr


async def _own_scope(session: AsyncSession, name: str, caller: Caller) -> ScopeRecord:
    owner = _owner(caller)
    found = next((s for s in await clients.list_scopes(session) if s.name == name), None)
    if found is None:
        raise ProblemError("not-found", "No scope with that name")
    if found.owner_orgnr != owner:
        raise ProblemError("forbidden", "Only the organisation that owns a scope may change it")
    return found


@router.get("/scopes")
async def list_scopes(request: Request, caller: ScopeOwner) -> list[dict[str, Any]]:
    """The scopes this organisation owns, with the organisations granted each."""
    owner = _owner(caller)
    async with (await _db_call(request)).session() as session:
        owned = [s for s in await clients.list_scopes(session) if s.owner_orgnr == owner]
        return [
            {**s.model_dump(mode="json"), "grants": await clients.grants(session, s.name)}
            for s in owned
        ]


@router.post("/scopes", status_code=201)
async def create_scope(
    new: NewScope, request: Request, caller: ScopeOwner, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    owner = _owner(caller)

    async def create(session: AsyncSession) -> tuple[int, Any]:
        try:
            scope = await clients.add_scope(
                session,
                new.name,
                owner_orgnr=owner,
                description=new.description,
                for_people=new.for_people,
                for_machines=new.for_machines,
                public=new.public,
            )
        except ClientError as exc:
            raise _problem(exc) from None
        return 201, scope.model_dump(mode="json")

    return await once(
        await _db_call(request),
        caller=caller.client_id,
        key=idempotency_key,
        fingerprint=request_fingerprint("POST", request.url.path, new.model_dump()),
        create=create,
    )


@router.put("/scopes/{name}/grants/{consumer_orgnr}", status_code=204)
async def grant(name: str, consumer_orgnr: str, request: Request, caller: ScopeOwner) -> Response:
    """Let an organisation use the scope (idempotent)."""
    async with (await _db_call(request)).session() as session:
        await _own_scope(session, name, caller)
        try:
            await clients.grant_scope(session, name, consumer_orgnr)
        except ClientError as exc:
            raise _problem(exc) from None
        except UnknownScope:
            raise ProblemError("not-found", "No scope with that name") from None
    return Response(status_code=204)


@router.delete("/scopes/{name}/grants/{consumer_orgnr}", status_code=204)
async def revoke(name: str, consumer_orgnr: str, request: Request, caller: ScopeOwner) -> Response:
    async with (await _db_call(request)).session() as session:
        await _own_scope(session, name, caller)
        try:
            await clients.revoke_scope(session, name, consumer_orgnr)
        except ClientError as exc:
            raise _problem(exc) from None
    return Response(status_code=204)
