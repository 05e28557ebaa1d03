"""Once only: fill in what the registers already know, and say where it came from.

Every lookup goes through the registry's service with an `Access` naming the service, so
the person can see on "Who has used my data" which service read what, when and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from felles.portal.definition import PREFILL_SOURCES, ServiceDefinition
from felles.portal.session import Party
from felles.registry import service as registry
from felles.registry.schemas import PersonRecord

ACCESSOR_PREFIX = "portal:"


def accessor(definition: ServiceDefinition) -> str:
    """How the portal's lookups for a service are named in the access log."""
    return f"{ACCESSOR_PREFIX}{definition.code}"


@dataclass
class Prefilled:
    data: dict[str, Any] = field(default_factory=dict)
    # field -> the register it came from ("population register", ...)
    sources: dict[str, str] = field(default_factory=dict)
    # field -> the choices drawn from a register (value, label)
    options: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def as_stored(self) -> dict[str, Any]:
        return {"sources": self.sources, "options": self.options}


def _address(record: Any) -> dict[str, str] | None:
    if not record.street:
        return None
    return {
        "street": record.street,
        "postal_code": record.postal_code or "",
        "postal_town": record.postal_town or "",
    }


def _child(child: PersonRecord) -> dict[str, str]:
    return {"pid": child.pid, "name": child.full_name, "birth_date": child.birth_date.isoformat()}


async def prefill(
    session: AsyncSession, definition: ServiceDefinition, pid: str, party: Party
) -> Prefilled:
    """Values for the definition's prefill rules and register-drawn choices."""
    access = registry.Access(accessed_by=accessor(definition), purpose="prefill")
    sources = {rule.source for rule in definition.prefill}
    sources |= {q.options_from for p in definition.pages for q in p.questions if q.options_from}
    found: dict[str, Any] = {}
    if any(s.startswith("person.") and s not in ("person.children",) for s in sources):
        person = await registry.get_person(session, pid, access)
        found |= {
            "person.name": person.full_name,
            "person.given_name": " ".join(p for p in (person.given_name, person.middle_name) if p),
            "person.family_name": person.family_name,
            "person.birth_date": person.birth_date.isoformat(),
            "person.address": _address(person),
        }
    if "person.children" in sources:
        found["person.children"] = [
            _child(c) for c in await registry.children(session, pid, access) if not c.deceased_on
        ]
    if "person.email" in sources or "person.mobile" in sources:
        contact = await registry.contact(session, pid, access)
        found["person.email"] = contact.email if contact else None
        found["person.mobile"] = contact.mobile if contact else None
    if any(s.startswith("organisation.") for s in sources) and not party.is_person:
        org = await registry.get_organisation(session, party.id)
        found |= {
            "organisation.orgnr": org.orgnr,
            "organisation.name": org.name,
            "organisation.address": _address(org),
            "organisation.roles": [
                {"code": r.code, "since": r.since.isoformat()}
                for r in await registry.roles_in(session, org.orgnr)
            ],
        }
    result = Prefilled()
    for rule in definition.prefill:
        value = found.get(rule.source)
        if value not in (None, "", []):
            result.data[rule.field] = value
            result.sources[rule.field] = PREFILL_SOURCES[rule.source][1]
    for page in definition.pages:
        for question in page.questions:
            if question.options_from == "person.children":
                result.options[question.field] = [
                    {"value": c["pid"], "label": c["name"], "detail": c["birth_date"]}
                    for c in found.get("person.children", [])
                ]
    return result
