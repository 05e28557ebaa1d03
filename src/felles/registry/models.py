"""Tables of the registers. Other parts never touch these; they call registry.service."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from felles.db import Base


class RelationKind(StrEnum):
    """What the related person is to the person: `parent` means "this is my parent"."""

    parent = "parent"
    child = "child"
    spouse = "spouse"


class PersonEventKind(StrEnum):
    birth = "birth"
    immigration = "immigration"
    relocation = "relocation"
    name_change = "name_change"
    marriage = "marriage"
    death = "death"


class RoleCode(StrEnum):
    DAGL = "DAGL"  # general manager
    LEDE = "LEDE"  # chair of the board
    MEDL = "MEDL"  # board member
    REGN = "REGN"  # accountant
    INNH = "INNH"  # owner of a sole proprietorship


class OrgForm(StrEnum):
    AS = "AS"  # private limited company
    ASA = "ASA"  # public limited company
    ENK = "ENK"  # sole proprietorship
    DA = "DA"  # partnership with shared liability
    SA = "SA"  # cooperative
    STI = "STI"  # foundation
    FLI = "FLI"  # association
    KOMM = "KOMM"  # municipality
    FYLK = "FYLK"  # county
    STAT = "STAT"  # central government agency


class AgencyLevel(StrEnum):
    central = "central"
    municipal = "municipal"


class Person(Base):
    __tablename__ = "registry_person"

    pid: Mapped[str] = mapped_column(String(11), primary_key=True)
    given_name: Mapped[str] = mapped_column(String(100))
    middle_name: Mapped[str | None] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))  # "F" or "M", as the register records it
    citizenship: Mapped[str] = mapped_column(String(2), default="NO")  # ISO 3166 alpha-2
    street: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(4))
    postal_town: Mapped[str | None] = mapped_column(String(100))
    municipality_number: Mapped[str | None] = mapped_column(String(4), index=True)
    municipality_name: Mapped[str | None] = mapped_column(String(100))
    deceased_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    events: Mapped[list[PersonEvent]] = relationship(
        back_populates="person", order_by="PersonEvent.id", lazy="raise"
    )

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.given_name, self.middle_name, self.family_name) if p)


class PersonEvent(Base):
    """What happened to a person (birth, relocation, ...): history is kept, never overwritten."""

    __tablename__ = "registry_person_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pid: Mapped[str] = mapped_column(ForeignKey("registry_person.pid", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    effective_on: Mapped[date] = mapped_column(Date)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    person: Mapped[Person] = relationship(back_populates="events", lazy="raise")

    __table_args__ = (Index("ix_registry_person_event_pid_id", "pid", "id"),)


class Relation(Base):
    """A family link, stored in both directions so each side reads it with one query."""

    __tablename__ = "registry_relation"

    pid: Mapped[str] = mapped_column(
        ForeignKey("registry_person.pid", ondelete="CASCADE"), primary_key=True
    )
    related_pid: Mapped[str] = mapped_column(
        ForeignKey("registry_person.pid", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    since: Mapped[date | None] = mapped_column(Date)


class Organisation(Base):
    __tablename__ = "registry_organisation"

    orgnr: Mapped[str] = mapped_column(String(9), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    form: Mapped[str] = mapped_column(String(4))
    industry_code: Mapped[str | None] = mapped_column(String(6))  # NACE, e.g. "62.010"
    street: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(4))
    postal_town: Mapped[str | None] = mapped_column(String(100))
    municipality_number: Mapped[str | None] = mapped_column(String(4))
    registered_on: Mapped[date] = mapped_column(Date)
    parent_orgnr: Mapped[str | None] = mapped_column(
        ForeignKey("registry_organisation.orgnr", ondelete="SET NULL")
    )


class Role(Base):
    """A person's role in an organisation (general manager, board chair, owner ...)."""

    __tablename__ = "registry_role"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    orgnr: Mapped[str] = mapped_column(
        ForeignKey("registry_organisation.orgnr", ondelete="CASCADE"), index=True
    )
    pid: Mapped[str] = mapped_column(
        ForeignKey("registry_person.pid", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(4))
    since: Mapped[date] = mapped_column(Date)

    __table_args__ = (UniqueConstraint("orgnr", "pid", "code", name="uq_registry_role"),)


class ContactInfo(Base):
    """The contact and reservation register (KRR): one row per person who has one."""

    __tablename__ = "registry_contact"

    pid: Mapped[str] = mapped_column(
        ForeignKey("registry_person.pid", ondelete="CASCADE"), primary_key=True
    )
    email: Mapped[str | None] = mapped_column(String(254))
    mobile: Mapped[str | None] = mapped_column(String(20))
    last_confirmed_on: Mapped[date | None] = mapped_column(Date)
    reserved: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    reserved_on: Mapped[date | None] = mapped_column(Date)
    mailbox_provider: Mapped[str | None] = mapped_column(String(20))  # felles, digipost, eboks
    mailbox_address: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(2), default="nb")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Agency(Base):
    """An organisation that offers services on Felles, with its names in three languages."""

    __tablename__ = "registry_agency"

    orgnr: Mapped[str] = mapped_column(
        ForeignKey("registry_organisation.orgnr", ondelete="CASCADE"), primary_key=True
    )
    slug: Mapped[str] = mapped_column(String(50), unique=True)
    level: Mapped[str] = mapped_column(String(10))
    name_nb: Mapped[str] = mapped_column(String(200))
    name_nn: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    municipality_number: Mapped[str | None] = mapped_column(String(4))

    def name(self, lang: str) -> str:
        return {"nn": self.name_nn, "en": self.name_en}.get(lang, self.name_nb)


class ContactChange(Base):
    """One change to a person's entry in the contact register: kept as history, never
    overwritten, so a person (and support) can see what was changed, when and by whom."""

    __tablename__ = "registry_contact_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pid: Mapped[str] = mapped_column(String(11))
    field: Mapped[str] = mapped_column(String(30))
    old_value: Mapped[str | None] = mapped_column(String(254))
    new_value: Mapped[str | None] = mapped_column(String(254))
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_registry_contact_change_pid", "pid", "changed_at"),)


class DataAccess(Base):
    """Who looked up a person's data, when and why: shown to the citizen later."""

    __tablename__ = "registry_data_access"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pid: Mapped[str] = mapped_column(String(11))
    accessed_by: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(String(30))
    accessed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (Index("ix_registry_data_access_pid_at", "pid", "accessed_at"),)
