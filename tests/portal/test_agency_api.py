"""The portal's agency API over HTTP: real machine tokens, real database, problem JSON."""

from __future__ import annotations

import base64
import copy
import json
import random
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from felles.db import Database
from felles.portal.demo import example_documents
from felles.portal.models import Message
from felles.registry import service as registry
from felles.registry.models import Organisation
from felles.registry.numbers import synthetic_orgnr, synthetic_pid
from tests.portal.agencies import AgencyAuth, machine_token
from tests.portal.conftest import MakeSubmission

API = "/api/portal/v1"
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def problem_of(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}", body
    return body


# --- Submissions ------------------------------------------------------------------------


async def test_list_pages_and_filters(
    client: httpx.AsyncClient, oslo: AgencyAuth, make_submission: MakeSubmission
) -> None:
    code = f"test-{secrets.token_hex(4)}"
    start = datetime.now(UTC) - timedelta(days=1)
    minutes = [0, 1, 2, 2, 3]  # two at the same moment: the id breaks the tie
    made = [
        await make_submission(
            oslo.orgnr, service_code=code, submitted_at=start + timedelta(minutes=m)
        )
        for m in minutes
    ]
    made.sort(key=lambda s: (s.submitted_at, s.id))
    ids = [s.id for s in made]
    seen: list[str] = []
    after: str | None = None
    for _ in range(5):
        params: dict[str, Any] = {"service_code": code, "limit": 2}
        if after:
            params["after"] = after
        page = await client.get(f"{API}/submissions", params=params, headers=oslo.headers)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [item["id"] for item in body["items"]]
        after = body["next"]
        if after is None:
            break
    assert seen == ids  # oldest first, each once, across pages
    first = (
        await client.get(f"{API}/submissions", params={"service_code": code}, headers=oslo.headers)
    ).json()["items"][0]
    assert first["reference"] == made[0].reference
    assert first["party"] == {"kind": "person", "id": made[0].party_id}
    assert first["status"] == "received" and first["acknowledged_at"] is None

    await client.post(f"{API}/submissions/{ids[0]}/acknowledgement", headers=oslo.headers)
    received = await client.get(
        f"{API}/submissions",
        params={"service_code": code, "status": "received"},
        headers=oslo.headers,
    )
    assert [i["id"] for i in received.json()["items"]] == ids[1:]
    acknowledged = await client.get(
        f"{API}/submissions",
        params={"service_code": code, "status": "acknowledged"},
        headers=oslo.headers,
    )
    assert [i["id"] for i in acknowledged.json()["items"]] == ids[:1]

    # Without a filter the whole list pages through too, and holds only Oslo's.
    everything: list[dict[str, Any]] = []
    after = None
    while True:
        params = {"limit": 50, **({"after": after} if after else {})}
        body = (await client.get(f"{API}/submissions", params=params, headers=oslo.headers)).json()
        everything += body["items"]
        after = body["next"]
        if after is None:
            break
    assert [i["id"] for i in everything if i["id"] in ids] == ids
    keys = [(i["submitted_at"], i["id"]) for i in everything]
    assert keys == sorted(keys)
    assert all(i["service_code"] != "vat-return" for i in everything)

    bad = await client.get(
        f"{API}/submissions", params={"after": "bm90LWEtY3Vyc29y"}, headers=oslo.headers
    )
    problem_of(bad, 422, "validation")
    assert bad.json()["errors"][0]["field"] == "after"


async def test_fetch_a_submission_with_attachments_and_receipt(
    client: httpx.AsyncClient, oslo: AgencyAuth, make_submission: MakeSubmission
) -> None:
    made = await make_submission(
        oslo.orgnr,
        data={"first_choice": "Solsikken", "hours": "full"},
        attachments=[("Legeerklæring «mars».pdf", "application/pdf", PDF)],
        receipt_pdf=PDF,
    )
    response = await client.get(f"{API}/submissions/{made.id}", headers=oslo.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] == {"first_choice": "Solsikken", "hours": "full"}
    assert body["receipt_available"] is True
    assert body["submitted_by"] == made.submitted_by
    [attachment] = body["attachments"]
    assert attachment["size"] == len(PDF) and attachment["scan_status"] == "clean"

    file = await client.get(
        f"{API}/submissions/{made.id}/attachments/{attachment['id']}", headers=oslo.headers
    )
    assert file.status_code == 200 and file.content == PDF
    assert file.headers["content-type"] == "application/pdf"
    disposition = file.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Legeerkl_ring _mars_.pdf"')
    assert "filename*=UTF-8''Legeerkl%C3%A6ring%20%C2%ABmars%C2%BB.pdf" in disposition

    receipt = await client.get(f"{API}/submissions/{made.id}/receipt.pdf", headers=oslo.headers)
    assert receipt.status_code == 200 and receipt.content == PDF

    waiting = await make_submission(oslo.orgnr)
    not_yet = await client.get(f"{API}/submissions/{waiting.id}/receipt.pdf", headers=oslo.headers)
    problem_of(not_yet, 409, "not-ready")
    assert not_yet.headers["retry-after"]
    missing = await client.get(
        f"{API}/submissions/{made.id}/attachments/{'0' * 32}", headers=oslo.headers
    )
    problem_of(missing, 404, "not-found")


async def test_acknowledging_twice_is_harmless(
    client: httpx.AsyncClient, oslo: AgencyAuth, make_submission: MakeSubmission
) -> None:
    made = await make_submission(oslo.orgnr)
    url = f"{API}/submissions/{made.id}/acknowledgement"
    first = await client.post(url, headers=oslo.headers)
    again = await client.post(url, headers=oslo.headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == "acknowledged"
    assert first.json() == again.json()
    assert first.json()["acknowledged_at"]


async def test_a_decision_lands_in_the_inbox_and_decides(
    db: Database, client: httpx.AsyncClient, oslo: AgencyAuth, make_submission: MakeSubmission
) -> None:
    made = await make_submission(oslo.orgnr)
    feedback = await client.post(
        f"{API}/submissions/{made.id}/messages",
        json={"kind": "feedback", "title": "Vi har fått søknaden", "body": "Svar innen mai."},
        headers=oslo.headers,
    )
    assert feedback.status_code == 201, feedback.text
    status = (await client.get(f"{API}/submissions/{made.id}", headers=oslo.headers)).json()
    assert status["status"] == "received"  # feedback is not a decision

    decision = await client.post(
        f"{API}/submissions/{made.id}/messages",
        json={
            "kind": "decision",
            "title": "Vedtak om barnehageplass",
            "body": "Barnet har fått plass.\n\nVelkommen!",
            "sender_reference": "2025/123",
            "confirm_required": True,
        },
        headers=oslo.headers,
    )
    assert decision.status_code == 201, decision.text
    sent = decision.json()
    assert sent["recipient"] == {"kind": "person", "id": made.party_id}
    assert sent["submission_id"] == made.id and sent["read_at"] is None

    async with db.session() as session:
        message = await session.get(Message, sent["id"])
        assert message is not None
        assert (message.party_kind, message.party_id) == ("person", made.party_id)
        assert message.kind == "decision" and message.sender_orgnr == oslo.orgnr
        assert message.confirm_required and message.sender_reference == "2025/123"
        message.read_at = datetime.now(UTC)

    fetched = (await client.get(f"{API}/submissions/{made.id}", headers=oslo.headers)).json()
    assert fetched["status"] == "decided" and fetched["acknowledged_at"]
    assert [m["kind"] for m in fetched["messages"]] == ["feedback", "decision"]
    shown = (await client.get(f"{API}/messages/{sent['id']}", headers=oslo.headers)).json()
    assert shown["read_at"] and shown["confirmed_at"] is None

    broken = await client.post(
        f"{API}/submissions/{made.id}/messages",
        json={"kind": "decision", "title": "Nul\x00", "body": "x"},
        headers=oslo.headers,
    )
    assert problem_of(broken, 422, "validation")["errors"][0]["field"] == "title"


# --- Correspondence ---------------------------------------------------------------------


async def test_correspondence_to_a_person_with_attachments(
    db: Database, client: httpx.AsyncClient, skatt: AgencyAuth, people: list[str]
) -> None:
    pid = people[1]
    sent = await client.post(
        f"{API}/correspondence",
        json={
            "recipient": {"kind": "person", "id": pid},
            "title": "Skatteoppgjøret ditt er klart",
            "body": "Se vedlegg.",
            "confirm_required": True,
            "attachments": [
                {"filename": "../../oppgjør.pdf", "content_base64": b64(PDF)},
                {"filename": "kvittering.png", "content_base64": b64(PNG)},
                {"filename": "notat.txt", "content_base64": b64("Hei på deg\n".encode())},
            ],
        },
        headers=skatt.headers,
    )
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["kind"] == "correspondence" and body["recipient"]["id"] == pid
    assert [(a["filename"], a["content_type"]) for a in body["attachments"]] == [
        ("oppgjør.pdf", "application/pdf"),
        ("kvittering.png", "image/png"),
        ("notat.txt", "text/plain"),
    ]
    status = await client.get(f"{API}/messages/{body['id']}", headers=skatt.headers)
    assert status.json()["attachments"] == body["attachments"]
    async with db.session() as session:
        log = await registry.data_access_log(session, pid)
    assert any(e.accessed_by == skatt.orgnr and e.purpose == "correspondence" for e in log)


async def test_correspondence_to_an_organisation(
    db: Database, client: httpx.AsyncClient, skatt: AgencyAuth
) -> None:
    async with db.session() as session:
        orgnr = (await registry.list_organisations(session, limit=1))[0].orgnr
    sent = await client.post(
        f"{API}/correspondence",
        json={
            "recipient": {"kind": "organisation", "id": orgnr},
            "title": "Purring: MVA-melding",
            "body": "Fristen er passert.",
            "attachments": [{"filename": "purring.pdf", "content_base64": b64(PDF)}],
        },
        headers=skatt.headers,
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["recipient"] == {"kind": "organisation", "id": orgnr}


@pytest.mark.parametrize(
    ("recipient", "status", "slug"),
    [
        ({"kind": "person", "id": "01810000000"}, 422, "invalid-number"),  # bad check digits
        ({"kind": "person", "id": "123"}, 422, "invalid-number"),
        ({"kind": "organisation", "id": "123456789"}, 422, "invalid-number"),
    ],
)
async def test_correspondence_to_invalid_numbers(
    client: httpx.AsyncClient,
    skatt: AgencyAuth,
    recipient: dict[str, str],
    status: int,
    slug: str,
) -> None:
    response = await client.post(
        f"{API}/correspondence",
        json={"recipient": recipient, "title": "Hei", "body": "Hei"},
        headers=skatt.headers,
    )
    body = problem_of(response, status, slug)
    assert body["errors"][0]["field"] == "recipient.id"
    assert recipient["id"] not in response.text  # numbers are never echoed


async def test_correspondence_to_someone_not_in_the_registers(
    db: Database, client: httpx.AsyncClient, skatt: AgencyAuth
) -> None:
    rng = random.Random(2025)
    async with db.session() as session:
        access = registry.Access(accessed_by="test", purpose="test")
        pid = synthetic_pid(date(1901, 2, 3), rng)
        while await registry.person_exists(session, pid, access):
            pid = synthetic_pid(date(1901, 2, 3), rng)
        orgnr = synthetic_orgnr(rng)
        while await session.get(Organisation, orgnr) is not None:
            orgnr = synthetic_orgnr(rng)
    for recipient in ({"kind": "person", "id": pid}, {"kind": "organisation", "id": orgnr}):
        response = await client.post(
            f"{API}/correspondence",
            json={"recipient": recipient, "title": "Hei", "body": "Hei"},
            headers=skatt.headers,
        )
        body = problem_of(response, 422, "unknown-recipient")
        assert body["errors"][0]["field"] == "recipient.id"
        assert pid not in response.text


@pytest.mark.parametrize(
    ("attachments", "field"),
    [
        ([{"filename": "a.exe", "content_base64": b64(b"MZ\x90\x00\x03")}], "attachments.0"),
        ([{"filename": "a.pdf", "content_base64": "not base64!"}], "attachments.0.content_base64"),
        ([{"filename": "a.pdf", "content_base64": ""}], "attachments.0"),
        ([{"filename": "a.pdf", "content_base64": b64(PDF)}] * 11, "attachments"),
    ],
)
async def test_correspondence_refuses_bad_attachments(
    client: httpx.AsyncClient,
    skatt: AgencyAuth,
    people: list[str],
    attachments: list[dict[str, str]],
    field: str,
) -> None:
    response = await client.post(
        f"{API}/correspondence",
        json={
            "recipient": {"kind": "person", "id": people[0]},
            "title": "Hei",
            "body": "Hei",
            "attachments": attachments,
        },
        headers=skatt.headers,
    )
    body = problem_of(response, 422, "validation")
    assert body["errors"][0]["field"] == field, body


async def test_big_files_go_through_and_a_huge_body_is_refused_at_the_edge(
    client: httpx.AsyncClient, skatt: AgencyAuth, people: list[str]
) -> None:
    async def send(size: int) -> httpx.Response:
        return await client.post(
            f"{API}/correspondence",
            json={
                "recipient": {"kind": "person", "id": people[0]},
                "title": "Stor fil",
                "body": "Se vedlegg",
                "attachments": [{"filename": "stor.pdf", "content_base64": b64(PDF + b"0" * size)}],
            },
            headers=skatt.headers,
        )

    assert (await send(9_000_000)).status_code == 201  # more than other requests may carry
    problem_of(await send(12_500_000), 413, "payload-too-large")  # base64: over 16 MB


async def test_idempotency_replays_and_conflicts(
    client: httpx.AsyncClient, skatt: AgencyAuth, people: list[str]
) -> None:
    payload = {"recipient": {"kind": "person", "id": people[2]}, "title": "Brev", "body": "Hei"}
    headers = {**skatt.headers, "Idempotency-Key": f"letter-{secrets.token_hex(4)}"}
    first = await client.post(f"{API}/correspondence", json=payload, headers=headers)
    again = await client.post(f"{API}/correspondence", json=payload, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post(
        f"{API}/correspondence", json={**payload, "body": "Noe annet"}, headers=headers
    )
    problem_of(other, 409, "conflict")


# --- Access -----------------------------------------------------------------------------


async def test_another_agencys_things_are_not_found(
    client: httpx.AsyncClient,
    oslo: AgencyAuth,
    skatt: AgencyAuth,
    people: list[str],
    make_submission: MakeSubmission,
) -> None:
    made = await make_submission(
        oslo.orgnr, attachments=[("a.pdf", "application/pdf", PDF)], receipt_pdf=PDF
    )
    details = (await client.get(f"{API}/submissions/{made.id}", headers=oslo.headers)).json()
    attachment_id = details["attachments"][0]["id"]
    message = (
        await client.post(
            f"{API}/correspondence",
            json={"recipient": {"kind": "person", "id": people[0]}, "title": "Hei", "body": "x"},
            headers=oslo.headers,
        )
    ).json()
    missing = await client.get(f"{API}/submissions/{'f' * 36}", headers=skatt.headers)
    problem_of(missing, 404, "not-found")
    for method, path in [
        ("GET", f"/submissions/{made.id}"),
        ("GET", f"/submissions/{made.id}/attachments/{attachment_id}"),
        ("GET", f"/submissions/{made.id}/receipt.pdf"),
        ("POST", f"/submissions/{made.id}/acknowledgement"),
        ("GET", f"/messages/{message['id']}"),
        ("DELETE", "/services/kindergarten-place"),
    ]:
        response = await client.request(method, API + path, headers=skatt.headers)
        body = problem_of(response, 404, "not-found")
        if path.startswith("/submissions"):  # the same answer as for no submission at all
            assert body["detail"] == missing.json()["detail"]
    answered = await client.post(
        f"{API}/submissions/{made.id}/messages",
        json={"kind": "decision", "title": "Avslag", "body": "Nei"},
        headers=skatt.headers,
    )
    problem_of(answered, 404, "not-found")
    listed = (
        await client.get(f"{API}/submissions", params={"limit": 500}, headers=skatt.headers)
    ).json()
    assert made.id not in {i["id"] for i in listed["items"]}
    still = (await client.get(f"{API}/submissions/{made.id}", headers=oslo.headers)).json()
    assert still["status"] == "received"


async def test_tokens_without_access_are_refused(
    app: Any, db: Database, client: httpx.AsyncClient
) -> None:
    anonymous = await client.get(f"{API}/submissions")
    problem_of(anonymous, 401, "unauthorized")
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    garbage = await client.get(f"{API}/submissions", headers={"authorization": "Bearer x.y.z"})
    problem_of(garbage, 401, "unauthorized")

    async with db.session() as session:
        orgnr = (await registry.get_agency(session, "oslo-kommune")).orgnr
    other_scope = await machine_token(db, client, orgnr, scope=f"test:portal{secrets.token_hex(3)}")
    refused = await client.get(
        f"{API}/submissions", headers={"authorization": f"Bearer {other_scope}"}
    )
    problem_of(refused, 403, "forbidden")
    assert "insufficient_scope" in refused.headers["www-authenticate"]

    # A token of ours with the scope but no organisation (as a person's token would be).
    rt = app.state.identity
    await rt.ready()
    issued = await rt.tokens.access_token(
        client_id="someone", scope="felles:portal.submissions", lifetime=60, audience="x"
    )
    nobody = await client.get(
        f"{API}/submissions", headers={"authorization": f"Bearer {issued.token}"}
    )
    assert "organisation" in problem_of(nobody, 403, "forbidden")["detail"]


# --- Services ---------------------------------------------------------------------------


def example(code: str) -> dict[str, Any]:
    return copy.deepcopy(next(d for d in example_documents() if d["code"] == code))


async def test_publish_a_new_version_then_withdraw(
    client: httpx.AsyncClient, skatt: AgencyAuth
) -> None:
    document = example("change-of-address")
    document["code"] = f"test-move-{secrets.token_hex(3)}"
    created = await client.post(f"{API}/services", json=document, headers=skatt.headers)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "code": document["code"],
        "version": document.get("version", 1),
        "owner_orgnr": skatt.orgnr,
        "created": True,
    }
    unchanged = await client.post(f"{API}/services", json=document, headers=skatt.headers)
    assert unchanged.status_code == 200 and unchanged.json()["created"] is False
    changed = {**document, "keywords": ["flytte", "endret"]}
    clash = await client.post(f"{API}/services", json=changed, headers=skatt.headers)
    problem_of(clash, 422, "invalid-definition")
    newer = await client.post(
        f"{API}/services", json={**changed, "version": 2}, headers=skatt.headers
    )
    assert newer.status_code == 201 and newer.json()["version"] == 2

    gone = await client.delete(f"{API}/services/{document['code']}", headers=skatt.headers)
    assert gone.status_code == 204
    again = await client.delete(f"{API}/services/{document['code']}", headers=skatt.headers)
    problem_of(again, 404, "not-found")


async def test_publish_a_broken_definition_lists_every_problem(
    client: httpx.AsyncClient, oslo: AgencyAuth
) -> None:
    document = example("kindergarten-place")
    document["code"] = f"test-broken-{secrets.token_hex(3)}"
    document["name"] = {"nb": "Bare bokmål"}
    document["pages"][0]["questions"][0]["field"] = "not_in_schema"
    document["schema"]["required"].append("never_asked")
    response = await client.post(f"{API}/services", json=document, headers=oslo.headers)
    body = problem_of(response, 422, "invalid-definition")
    pointers = {e["pointer"] for e in body["errors"]}
    assert len(body["errors"]) >= 2 and all(e["detail"] for e in body["errors"])
    assert "/name/nn" in pointers and "/name/en" in pointers, body

    semantic = example("kindergarten-place")
    semantic["code"] = f"test-broken-{secrets.token_hex(3)}"
    semantic["pages"][0]["questions"][0]["field"] = "not_in_schema"
    semantic["schema"]["required"].append("never_asked")
    response = await client.post(f"{API}/services", json=semantic, headers=oslo.headers)
    body = problem_of(response, 422, "invalid-definition")
    details = " ".join(e["detail"] for e in body["errors"])
    assert "not_in_schema" in details and "never_asked" in details, body
    assert {"/pages/child", "/schema"} <= {e["pointer"] for e in body["errors"]}

    not_json_object = await client.post(f"{API}/services", json=[1, 2], headers=oslo.headers)
    assert not_json_object.status_code == 422


async def test_publish_for_another_agency_is_forbidden(
    client: httpx.AsyncClient, oslo: AgencyAuth
) -> None:
    document = example("vat-return")  # owned by skatteetaten
    document["code"] = f"test-vat-{secrets.token_hex(3)}"
    response = await client.post(f"{API}/services", json=document, headers=oslo.headers)
    problem_of(response, 403, "forbidden")
    theirs = await client.post(f"{API}/services", json=example("vat-return"), headers=oslo.headers)
    problem_of(theirs, 403, "forbidden")


async def test_publish_with_idempotency_key(client: httpx.AsyncClient, oslo: AgencyAuth) -> None:
    document = example("kindergarten-place")
    document["code"] = f"test-idem-{secrets.token_hex(3)}"
    headers = {**oslo.headers, "Idempotency-Key": secrets.token_hex(8)}
    first = await client.post(f"{API}/services", json=document, headers=headers)
    replay = await client.post(f"{API}/services", json=document, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    different = await client.post(
        f"{API}/services", json={**document, "version": 2}, headers=headers
    )
    problem_of(different, 409, "conflict")


async def test_input_no_database_can_store_is_a_problem_not_a_crash(
    client: httpx.AsyncClient, oslo: AgencyAuth
) -> None:
    """Found by probing past the fuzzer: these were 500s on PostgreSQL."""
    huge = example("kindergarten-place")
    huge["code"] = f"test-huge-{secrets.token_hex(3)}"
    huge["version"] = 2**40  # beyond the int4 column
    response = await client.post(f"{API}/services", json=huge, headers=oslo.headers)
    body = problem_of(response, 422, "invalid-definition")
    assert body["errors"][0]["pointer"] == "/version"

    nul = example("kindergarten-place")
    nul["code"] = f"test-nul-{secrets.token_hex(3)}"
    nul["schema"]["properties"]["first_choice"]["description"] = "a\x00b"
    response = await client.post(f"{API}/services", json=nul, headers=oslo.headers)
    body = problem_of(response, 422, "invalid-definition")
    assert body["errors"][0]["pointer"] == "/schema/properties/first_choice/description"

    for cursor in (["2025-01-01T00:00:00", "a\x00"], ["0001-01-01T00:00:00+10:00", "a"]):
        after = base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")
        response = await client.get(
            f"{API}/submissions", params={"after": after}, headers=oslo.headers
        )
        problem_of(response, 422, "validation")
