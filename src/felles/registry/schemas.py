"""What the registry hands to other parts: plain, immutable records (JSON uses model names)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from felles.registry.numbers import mask_pid


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address with its municipality, as the population register keeps it."""

    street: str
    postal_code: str
    postal_town: str
    municipality_number: str
    municipality_name: str

    def as_event(self) -> dict[str, str]:
        """The address as relocation events store it in a person's history."""
        return {
            "street": self.street,
            "postal_code": self.postal_code,
            "postal_town": self.postal_town,
            "municipality_number": self.municipality_number,
        }


class Record(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class PersonRecord(Record):
    pid: str
    given_name: str
    middle_name: str | None
    family_name: str
    birth_date: date
    sex: str
    citizenship: str
    street: str | None
    postal_code: str | None
    postal_town: str | None
    municipality_number: str | None
    municipality_name: str | None
    deceased_on: date | None

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.given_name, self.middle_name, self.family_name) if p)

    @property
    def masked_pid(self) -> str:
        return mask_pid(self.pid)

    def age_on(self, day: date) -> int:
        before_birthday = (day.month, day.day) < (self.birth_date.month, self.birth_date.day)
        return day.year - self.birth_date.year - before_birthday


class PersonEventRecord(Record):
    kind: str
    effective_on: date
    data: dict[str, Any]
    recorded_at: datetime


class RelativeRecord(Record):
    kind: str
    since: date | None
    person: PersonRecord


class OrganisationRecord(Record):
    orgnr: str
    name: str
    form: str
    industry_code: str | None
    street: str | None
    postal_code: str | None
    postal_town: str | None
    municipality_number: str | None
    registered_on: date
    parent_orgnr: str | None


class RoleRecord(Record):
    code: str
    since: date
    pid: str
    orgnr: str


class RoleInOrganisation(Record):
    """A person's role together with the organisation it is in ("act on behalf of")."""

    code: str
    since: date
    organisation: OrganisationRecord


class ContactRecord(Record):
    pid: str
    email: str | None
    mobile: str | None
    last_confirmed_on: date | None
    reserved: bool
    reserved_on: date | None
    mailbox_provider: str | None
    mailbox_address: str | None
    language: str


class ContactChangeRecord(Record):
    field: str
    old_value: str | None
    new_value: str | None
    changed_by: str
    changed_at: datetime


class AgencyRecord(Record):
    orgnr: str
    slug: str
    level: str
    name_nb: str
    name_nn: str
    name_en: str
    municipality_number: str | None

    def name(self, lang: str) -> str:
        return {"nn": self.name_nn, "en": self.name_en}.get(lang, self.name_nb)


class DataAccessRecord(Record):
    accessed_by: str
    purpose: str
    dataset: str
    accessed_at: datetime
