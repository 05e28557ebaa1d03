"""Felles' sending side keeps no readable letter: after letters whose documents carry a
unique marker have been sent every way (digital and print, one at a time and in a batch),
the marker is nowhere in the database: not in the SQLite file or its write-ahead log,
not in any row of any PostgreSQL table (bytea included), and not as the base64 the
documents arrived in. Opened with the provider's own key, the stored content has it.

The title is metadata, shown in the inbox by design, so the marker is only in the
documents."""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
from pypdf import PdfReader
from sqlalchemy import select

from felles.config import Settings
from felles.db import Database
from felles.mailbox import batches
from felles.mailbox import letters as L
from felles.mailbox.models import Letter
from tests.mailbox.mail import BATCHES, LETTERS, demo_people, letter, pdf, sender
from tests.mailbox.stored import open_sealed, stored


def documents(marker: str) -> tuple[bytes, bytes]:
    return pdf(f"Vedtak {marker}", pages=2), pdf(f"Vedlegg {marker}")


def with_documents(body: dict[str, object], main: bytes, attachment: bytes) -> dict[str, object]:
    return {
        **body,
        "document": {"name": "vedtak.pdf", "content_base64": base64.b64encode(main).decode()},
        "attachments": [
            {"name": "vedlegg.pdf", "content_base64": base64.b64encode(attachment).decode()}
        ],
    }


def sqlite_bytes(settings: Settings) -> bytes:
    path = Path(settings.resolved_database_url.split(":///", 1)[1])
    files = [path, path.with_name(path.name + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def postgresql_dump(settings: Settings) -> bytes:
    """Every row of every table in the database, as COPY writes them (bytea as hex)."""
    url = urlsplit(settings.resolved_database_url)
    dsn = f"postgresql://{url.netloc}{url.path}"
    out = bytearray()
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            )
        ]
        assert "public.mailbox_letter_content" in tables
        for table in tables:
            with conn.cursor().copy(f"COPY (SELECT * FROM {table}) TO STDOUT") as copy:
                for chunk in copy:
                    out += chunk
    return bytes(out)


async def everything_stored(db: Database, settings: Settings) -> tuple[bytes, bool]:
    """The database's bytes, and whether bytea shows as hex in them."""
    if db.is_sqlite:
        return sqlite_bytes(settings), False
    return await asyncio.to_thread(postgresql_dump, settings), True


async def test_no_readable_letter_is_stored(
    db: Database, client: httpx.AsyncClient, settings: Settings
) -> None:
    marker = f"PLAINTEXT-{secrets.token_hex(8).upper()}"
    control = f"CONTROL-{secrets.token_hex(8).upper()}"
    main, attachment = documents(marker)
    assert marker.encode() in main and marker.encode() in attachment
    who = await demo_people(db)
    headers = await sender(db, client)
    sent = []
    for kind, allowed, key in (
        ("felles", True, "digital-1"),
        ("reserved", True, "print-1"),
        ("reserved", False, None),  # none: nothing sealed
    ):
        body = with_documents(letter(who[kind], sender_ref=control), main, attachment)
        keyed = headers | ({"idempotency-key": f"{control}-{key}"} if key else {})
        body["print_allowed"] = allowed
        answer = await client.post(LETTERS, json=body, headers=keyed)
        assert answer.status_code == 201, answer.text
        sent.append(answer.json())
    assert [s["channel"] for s in sent] == ["digital", "print", "none"]

    made = await client.post(BATCHES, json={"reference": f"batch-{control}"}, headers=headers)
    batch = f"{BATCHES}/{made.json()['id']}"
    people = [who["felles"], who["reserved"], who["unregistered"]]
    filled = await client.post(
        f"{batch}/letters",
        json={
            "letters": [
                {**with_documents(letter(pid), main, attachment), "line": n}
                for n, pid in enumerate(people)
            ]
        },
        headers=headers,
    )
    assert filled.status_code == 200, filled.text
    assert (await client.post(f"{batch}/commit", headers=headers)).status_code == 200
    await batches.release_all(db)
    async with db.session() as session:
        in_batch = list(
            await session.scalars(select(Letter.id).where(Letter.batch_id == made.json()["id"]))
        )
    assert len(in_batch) == 3

    # Opened as the provider opens it, the marker is there: it would be found if kept.
    sealed = []
    for letter_id in [s["id"] for s in sent[:2]] + in_batch:
        kept = await stored(db, letter_id)
        assert kept.cms is not None and kept.letter.provider is not None
        sealed.append(kept.cms)
        opened = await open_sealed(db, settings, kept.letter.provider, kept.cms)
        package = L.unpack(opened)
        assert [d.content for d in package.documents] == [main, attachment]
        if kept.letter.channel == "print":  # the print provider's PDF has it too
            printed = PdfReader(io.BytesIO(L.print_document(package)))
            text = "".join(p.extract_text() for p in printed.pages)
            assert text.count(marker) == 3, "both of the letter's pages and its attachment's"

    stored_bytes, bytea_as_hex = await everything_stored(db, settings)
    assert control.encode() in stored_bytes, "the search sees the letters' rows"
    for blob in sealed:
        prefix = blob[:32]
        assert (prefix.hex().encode() if bytea_as_hex else prefix) in stored_bytes
    forms = {
        "the marker": marker.encode(),
        "the marker in UTF-16": marker.encode("utf-16-be"),
        "the marker in hex": marker.encode().hex().encode(),
        "the document in base64": base64.b64encode(main)[40:120],
        "the attachment in base64": base64.b64encode(attachment)[40:120],
    }
    for form, needle in forms.items():
        assert needle not in stored_bytes, f"{form} is stored readable"
        assert needle.lower() not in stored_bytes.lower(), f"{form} is stored readable"
