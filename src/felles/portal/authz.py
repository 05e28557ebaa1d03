"""Every access decision of the portal, made here and logged.

Whom may a person act for, may they use this service for that party, and if not, what
would let them (the roles the service accepts and who in the business can delegate it)?
Drafts, submissions and messages are only shown to someone allowed to act for their
party; everyone else is told the thing does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from felles.portal.definition import ServiceDefinition
from felles.portal.models import AccessDecision, Delegation, PartyKind
from felles.portal.session import Party
from felles.registry import service as registry
from felles.registry.models import Organisation, Person, Role, RoleCode
from felles.registry.numbers import mask_pid

log = structlog.get_logger("felles.portal.authz")
ACCESS = registry.Access(accessed_by="felles-portal", purpose="whom you can act for")
# Who in a business may delegate its services to others.
GRANTING_ROLES = (RoleCode.DAGL.value,)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    # When refused: the roles that would allow it, and who in the business can delegate.
    roles_needed: tuple[str, ...] = ()
    grantors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PartyChoice:
    """A party the person may act for, and why (their roles, or delegated services)."""

    party: Party
    roles: tuple[str, ...] = ()
    delegated_services: tuple[str, ...] = field(default_factory=tuple)


async def _roles_in(session: AsyncSession, pid: str, orgnr: str) -> set[str]:
    rows = await session.scalars(select(Role.code).where(Role.pid == pid, Role.orgnr == orgnr))
    return set(rows)


async def _delegated(session: AsyncSession, pid: str, orgnr: str, service_code: str) -> bool:
    found = await session.scalar(
        select(Delegation.id).where(
            Delegation.to_pid == pid,
            Delegation.orgnr == orgnr,
            Delegation.service_code == service_code,
            Delegation.revoked_at.is_(None),
        )
    )
    return found is not None


async def _grantors(session: AsyncSession, orgnr: str) -> tuple[str, ...]:
    rows = await session.execute(
        select(Person.given_name, Person.family_name)
        .join(Role, Role.pid == Person.pid)
        .where(Role.orgnr == orgnr, Role.code.in_(GRANTING_ROLES))
        .order_by(Person.family_name)
    )
    return tuple(f"{given} {family}" for given, family in rows)


async def grantors(session: AsyncSession, orgnr: str) -> tuple[str, ...]:
    """The names of the people who may give others access for this business (its
    general manager), to tell someone whom to ask."""
    return await _grantors(session, orgnr)


async def services_allowed(
    session: AsyncSession, pid: str, party: Party, definitions: Iterable[ServiceDefinition]
) -> set[str]:
    """Of these services, the codes `pid` may use for `party`: a filter for lists such as
    the inbox, so it is not logged (opening one thing is decided by `may_use`, logged)."""
    if party.kind is PartyKind.person:
        return {d.code for d in definitions} if party.id == pid else set()
    held = await _roles_in(session, pid, party.id)
    delegated = set(
        await session.scalars(
            select(Delegation.service_code).where(
                Delegation.to_pid == pid,
                Delegation.orgnr == party.id,
                Delegation.revoked_at.is_(None),
            )
        )
    )
    allowed: set[str] = set()
    for definition in definitions:
        roles = {r.value for r in definition.audience.roles}
        delegable = roles and definition.audience.delegable
        if held & roles or (delegable and definition.code in delegated):
            allowed.add(definition.code)
    return allowed


def decision_values(
    pid: str, party: Party, service: str | None, action: str, d: Decision, at: datetime
) -> dict[str, Any]:
    """The row that records a decision (`portal_access_decision`)."""
    return {
        "decided_at": at,
        "pid": pid,
        "party_kind": party.kind.value,
        "party_id": party.id,
        "service_code": service,
        "action": action,
        "allowed": d.allowed,
        "reason": d.reason,
    }


def announce(pid: str, party: Party, service: str | None, action: str, d: Decision) -> None:
    """The log line of a decision (the identity number masked)."""
    log.info(
        "access decision",
        person=mask_pid(pid),
        party_kind=party.kind.value,
        service=service,
        action=action,
        allowed=d.allowed,
        reason=d.reason,
    )


async def _log(
    session: AsyncSession, pid: str, party: Party, service: str | None, action: str, d: Decision
) -> None:
    session.add(
        AccessDecision(**decision_values(pid, party, service, action, d, datetime.now(UTC)))
    )
    announce(pid, party, service, action, d)


async def may_use(
    session: AsyncSession, pid: str, party: Party, definition: ServiceDefinition, action: str
) -> Decision:
    """May `pid`, acting for `party`, use this service (start, fill in, submit, read)?"""
    decision = await judge_use(session, pid, party, definition)
    await _log(session, pid, party, definition.code, action, decision)
    return decision


async def judge_use(
    session: AsyncSession, pid: str, party: Party, definition: ServiceDefinition
) -> Decision:
    audience = definition.audience
    if party.kind is PartyKind.person:
        if party.id != pid:
            return Decision(False, "not_this_person")
        if not audience.persons:
            return Decision(
                False, "service_for_businesses", roles_needed=tuple(r.value for r in audience.roles)
            )
        return Decision(True, "self")
    needed = tuple(r.value for r in audience.roles)
    if not needed:
        return Decision(False, "service_for_persons")
    held = await _roles_in(session, pid, party.id)
    if held & set(needed):
        return Decision(True, "role:" + ",".join(sorted(held & set(needed))))
    if audience.delegable and await _delegated(session, pid, party.id, definition.code):
        return Decision(True, "delegated")
    grantors = await _grantors(session, party.id) if audience.delegable else ()
    return Decision(False, "missing_role", roles_needed=needed, grantors=grantors)


async def may_act_for(session: AsyncSession, pid: str, party: Party, action: str) -> Decision:
    """May `pid` act for `party` at all (see its inbox, choose it)?"""
    if party.kind is PartyKind.person:
        decision = Decision(party.id == pid, "self" if party.id == pid else "not_this_person")
    else:
        held = await _roles_in(session, pid, party.id)
        if held:
            decision = Decision(True, "role:" + ",".join(sorted(held)))
        else:
            delegated = await session.scalar(
                select(Delegation.id).where(
                    Delegation.to_pid == pid,
                    Delegation.orgnr == party.id,
                    Delegation.revoked_at.is_(None),
                )
            )
            decision = Decision(delegated is not None, "delegated" if delegated else "no_role")
    await _log(session, pid, party, None, action, decision)
    return decision


async def may_delegate(session: AsyncSession, pid: str, orgnr: str) -> Decision:
    held = await _roles_in(session, pid, orgnr)
    if held & set(GRANTING_ROLES):
        decision = Decision(True, "role:DAGL")
    else:
        decision = Decision(False, "not_general_manager", roles_needed=GRANTING_ROLES)
    name = await session.scalar(select(Organisation.name).where(Organisation.orgnr == orgnr))
    party = Party(PartyKind.organisation, orgnr, name or "")
    await _log(session, pid, party, None, "delegate", decision)
    return decision


async def parties(session: AsyncSession, pid: str, name: str) -> list[PartyChoice]:
    """Whom the person may act for: themself, businesses where the register gives them a
    role, and businesses that delegated services to them."""
    choices = [PartyChoice(Party(PartyKind.person, pid, name))]
    by_org: dict[str, PartyChoice] = {}
    for held in await registry.roles_of(session, pid, ACCESS):
        org = held.organisation
        previous = by_org.get(org.orgnr)
        roles = (*(previous.roles if previous else ()), held.code)
        by_org[org.orgnr] = PartyChoice(Party(PartyKind.organisation, org.orgnr, org.name), roles)
    rows = await session.execute(
        select(Delegation.orgnr, Delegation.service_code, Organisation.name)
        .join(Organisation, Organisation.orgnr == Delegation.orgnr)
        .where(Delegation.to_pid == pid, Delegation.revoked_at.is_(None))
        .order_by(Organisation.name)
    )
    for orgnr, service_code, org_name in rows:
        previous = by_org.get(orgnr)
        by_org[orgnr] = PartyChoice(
            Party(PartyKind.organisation, orgnr, org_name),
            previous.roles if previous else (),
            (*(previous.delegated_services if previous else ()), service_code),
        )
    return choices + sorted(by_org.values(), key=lambda c: c.party.name)


class DelegationRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def delegate(
    session: AsyncSession,
    granter: str,
    orgnr: str,
    definition: ServiceDefinition,
    to_pid: str,
) -> Delegation:
    """The business's general manager lets `to_pid` use one service for the business."""
    if not (await may_delegate(session, granter, orgnr)).allowed:
        raise DelegationRefused("not_general_manager")
    if not definition.audience.roles or not definition.audience.delegable:
        raise DelegationRefused("not_delegable")
    if to_pid == granter:
        raise DelegationRefused("to_yourself")
    if await _delegated(session, to_pid, orgnr, definition.code):
        raise DelegationRefused("already_delegated")
    if not await registry.person_exists(
        session, to_pid, registry.Access(accessed_by="felles-portal", purpose="delegation")
    ):
        raise DelegationRefused("no_such_person")
    row = Delegation(
        orgnr=orgnr,
        service_code=definition.code,
        to_pid=to_pid,
        granted_by=granter,
        granted_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    log.info("delegation granted", service=definition.code, delegation=row.id)
    return row


async def revoke(session: AsyncSession, granter: str, orgnr: str, delegation_id: int) -> None:
    if not (await may_delegate(session, granter, orgnr)).allowed:
        raise DelegationRefused("not_general_manager")
    row = await session.get(Delegation, delegation_id)
    if row is None or row.orgnr != orgnr or row.revoked_at is not None:
        raise DelegationRefused("no_such_delegation")
    row.revoked_at = datetime.now(UTC)
    row.revoked_by = granter
    log.info("delegation revoked", service=row.service_code, delegation=row.id)


@dataclass(frozen=True, slots=True)
class DelegationView:
    id: int
    service_code: str
    to_name: str
    to_masked_pid: str
    granted_at: datetime


async def delegations(session: AsyncSession, orgnr: str) -> list[DelegationView]:
    rows = await session.execute(
        select(Delegation, Person.given_name, Person.family_name)
        .join(Person, Person.pid == Delegation.to_pid)
        .where(Delegation.orgnr == orgnr, Delegation.revoked_at.is_(None))
        .order_by(Delegation.service_code, Person.family_name)
    )
    return [
        DelegationView(d.id, d.service_code, f"{g} {f}", mask_pid(d.to_pid), d.granted_at)
        for d, g, f in rows
    ]
