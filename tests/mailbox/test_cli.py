"""The README's mailbox commands, run as a newcomer runs them: `felles mailbox
demo-people`, then `felles mailbox send` to each of them; and the mistakes people make
get one plain line, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from felles.config import Settings
from felles.db import Database
from felles.mailbox.models import Letter
from felles.registry.models import Person
from tests.conftest import run_felles

LETTER_PDF = Path(__file__).parents[2] / "docs" / "examples" / "letter.pdf"


async def test_send_to_the_demo_people(settings: Settings, db: Database) -> None:
    listed = run_felles(settings, "mailbox", "demo-people")
    assert listed.returncode == 0, listed.stderr
    felles_box, reserved, digipost = re.findall(r"\b\d{11}\b", listed.stdout)

    expected = {
        felles_box: r"digital, delivered\.\s+The recipient reads it at http://\S+/mailbox",
        reserved: r"print \(reserved\), delivered\.",
        digipost: r"digital, delivered\.",
    }
    for pid, says in expected.items():
        sent = run_felles(
            settings,
            "mailbox",
            "send",
            str(LETTER_PDF),
            "--to",
            pid,
            "--title",
            "Vedtak om bostøtte",
        )
        assert sent.returncode == 0, sent.stderr
        assert re.search(says, sent.stderr), sent.stderr
        letter_id = re.search(r"Letter (\S+):", sent.stderr)
        assert letter_id
        async with db.session() as session:
            letter = await session.get(Letter, letter_id.group(1))
        assert letter is not None
        assert (letter.recipient_pid, letter.title) == (pid, "Vedtak om bostøtte")


async def test_mistakes_get_one_plain_line(settings: Settings, db: Database) -> None:
    async with db.session() as session:
        someone = await session.scalar(
            select(Person.pid).where(Person.deceased_on.is_(None)).order_by(Person.pid).limit(1)
        )
    assert someone
    cases = [
        (("--to", "123"), 2, "--to: Invalid national identity number: it must be exactly 11"),
        (("--to", "01818012345"), 2, "the check digits do not match"),
        (("--to", someone, "--sender", "nobody"), 1, "No agency called 'nobody'"),
    ]
    for args, code, says in cases:
        done = run_felles(settings, "mailbox", "send", str(LETTER_PDF), *args)
        assert (done.returncode, "Traceback" in done.stderr) == (code, False), done.stderr
        assert says in " ".join(done.stderr.split()), done.stderr
    not_a_pdf = run_felles(settings, "mailbox", "send", __file__, "--to", someone)
    assert not_a_pdf.returncode == 1 and "Traceback" not in not_a_pdf.stderr
    assert "PDF" in not_a_pdf.stderr, not_a_pdf.stderr
    missing = run_felles(settings, "mailbox", "send", "/no/such.pdf", "--to", someone)
    assert missing.returncode == 1 and "Cannot read /no/such.pdf" in missing.stderr
