"""Senders look up how to reach people in the contact and reservation register, over
HTTP with real machine tokens: status and reservation always, contact details with one
scope, the digital mailbox and its encryption certificate with the other."""

from __future__ import annotations

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from felles.config import Settings
from felles.db import Database
from felles.mailbox import cms
from felles.mailbox.api import CONTACT_SCOPE, MAILBOX_SCOPE
from felles.registry import service as registry
from felles.registry.models import ContactInfo, Person
from felles.registry.numbers import mask_pid
from tests.portal.agencies import machine_token

LOOKUP = "/api/mailbox/v1/lookup"
NOT_IN_REGISTER = "01010012356"  # valid check digits, nobody in the demo country


async def nav(db: Database) -> str:
    async with db.session() as session:
        return (await registry.get_agency(session, "nav")).orgnr


async def token(db: Database, client: httpx.AsyncClient, scope: str) -> dict[str, str]:
    return {"authorization": f"Bearer {await machine_token(db, client, await nav(db), scope)}"}


async def people(db: Database) -> dict[str, str]:
    """One person of each kind in the demo country."""
    async with db.session() as session:
        reserved = await session.scalar(select(ContactInfo.pid).where(ContactInfo.reserved))
        with_box = await session.scalar(
            select(ContactInfo.pid).where(
                ContactInfo.mailbox_provider.is_not(None), ContactInfo.reserved.is_(False)
            )
        )
        without_contact = await session.scalar(
            select(Person.pid).where(Person.pid.not_in(select(ContactInfo.pid)))
        )
    assert reserved and with_box and without_contact
    return {"reserved": reserved, "box": with_box, "none": without_contact}


async def test_contact_details_with_the_contact_scope(
    db: Database, client: httpx.AsyncClient
) -> None:
    who = await people(db)
    asked = [who["box"], NOT_IN_REGISTER, who["reserved"], who["none"], who["box"]]
    answer = await client.post(
        LOOKUP, json={"persons": asked}, headers=await token(db, client, CONTACT_SCOPE)
    )
    assert answer.status_code == 200, answer.text
    found = answer.json()["persons"]
    assert [f["person"] for f in found] == asked  # one answer each, in order
    assert [f["status"] for f in found] == [
        "active", "not_registered", "active", "not_registered", "active"
    ]  # fmt: skip
    assert found[2]["reserved"] is True and found[0]["reserved"] is False
    assert "contact" in found[0] and "mailbox" not in found[0]
    assert set(found[0]["contact"]) == {"email", "mobile", "last_confirmed_on", "language"}
    async with db.session() as session:
        log = await registry.data_access_log(session, who["box"])
    sender = await nav(db)
    assert any(e.accessed_by == sender and e.purpose == "digital mail" for e in log)


async def test_the_mailbox_and_its_certificate_with_the_mailbox_scope(
    db: Database, client: httpx.AsyncClient, settings: Settings
) -> None:
    who = await people(db)
    answer = await client.post(
        LOOKUP, json={"persons": [who["box"]]}, headers=await token(db, client, MAILBOX_SCOPE)
    )
    [found] = answer.json()["persons"]
    assert "contact" not in found
    box = found["mailbox"]
    assert box["provider"] in ("felles", "digipost", "eboks") and box["address"]
    certificate = x509.load_pem_x509_certificate(box["certificate"].encode())
    assert certificate.public_key().key_size >= 2048  # type: ignore[union-attr]
    assert "PRIVATE" not in box["certificate"]
    # A sender encrypts to that certificate; only the provider's own key opens it.
    letter = cms.encrypt(b"%PDF-1.7 Vedtak", cms.Recipient(certificate))
    key_file = settings.keys_dir / f"mailbox-{box['provider']}.key"
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert cms.decrypt(letter, key, certificate) == b"%PDF-1.7 Vedtak"


async def test_refusals_are_problem_documents(db: Database, client: httpx.AsyncClient) -> None:
    who = await people(db)
    wrong_scope = await token(db, client, "felles:portal.submissions")
    refused = await client.post(LOOKUP, json={"persons": [who["box"]]}, headers=wrong_scope)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    headers = await token(db, client, CONTACT_SCOPE)
    bad = await client.post(LOOKUP, json={"persons": [who["box"], "12345678901"]}, headers=headers)
    assert bad.status_code == 422 and "persons[1]" in bad.text
    assert "12345678901" not in bad.text and mask_pid(who["box"]) not in bad.text
    too_many = await client.post(LOOKUP, json={"persons": [who["box"]] * 1001}, headers=headers)
    assert too_many.status_code == 422
    nobody = await client.post(LOOKUP, json={"persons": [who["box"]]})
    assert nobody.status_code == 401


@pytest.mark.parametrize("body", [{"persons": []}, {"persons": "x"}, {}, {"persons": [1]}])
async def test_malformed_bodies(db: Database, client: httpx.AsyncClient, body: object) -> None:
    answer = await client.post(LOOKUP, json=body, headers=await token(db, client, CONTACT_SCOPE))
    assert answer.status_code == 422
