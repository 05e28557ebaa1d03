"""The receipt PDF says what was sent, to whom and when, in the person's language, and no
answer can break it. Text is read back with pypdf and with poppler's pdftotext."""

from __future__ import annotations

import io
import os
import random
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, date, datetime
from typing import Any

import pypdf
import pytest

from felles.portal.definition import ServiceDefinition, parse
from felles.portal.demo import example_documents
from felles.portal.receipt_pdf import AttachedFile, ReceiptFacts, printable, render_receipt
from felles.registry.numbers import synthetic_pid

LANGS = ("nb", "nn", "en")
RNG = random.Random(2016)
PID = synthetic_pid(date(1990, 3, 14), RNG)
CHILD = synthetic_pid(date(2024, 5, 2), RNG)
ORGNR = "912345670"
AT = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)  # 30 November 00:30 in Oslo


@pytest.fixture(scope="module")
def definitions() -> dict[str, ServiceDefinition]:
    return {d["code"]: parse(d) for d in example_documents()}  # type: ignore[index]


def pdftotext(pdf: bytes) -> str:
    """Poppler's reading of the PDF (a second, independent reader)."""
    if shutil.which("pdftotext") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pdftotext (poppler-utils) is missing; .ci/run installs it")
        pytest.skip("pdftotext (poppler-utils) is not installed")
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(pdf)
        handle.flush()
        done = subprocess.run(
            ["pdftotext", "-enc", "UTF-8", handle.name, "-"],
            capture_output=True,
            check=True,
            timeout=60,
        )
    return done.stdout.decode("utf-8")


def pypdf_text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def flat(text: str) -> str:
    """Whitespace as one space (line breaks and no-break spaces vary between readers)."""
    return re.sub(r"\s+", " ", text.replace("\u00a0", " "))


def readings(pdf: bytes) -> list[str]:
    return [flat(pypdf_text(pdf)), flat(pdftotext(pdf))]


def facts(data: dict[str, Any], **changes: Any) -> ReceiptFacts:
    base: dict[str, Any] = {
        "reference": "K7M-4RX-9TE",
        "submitted_at": AT,
        "agency": "Oslo kommune",
        "party_name": "Kari Nordmann Ås",
        "party_is_person": True,
        "party_number": PID,
        "submitted_by": "Kari Nordmann Ås",
        "data": data,
    }
    return ReceiptFacts(**{**base, **changes})


KINDERGARTEN = {
    "applicant_name": "Kari Nordmann Ås",
    "applicant_address": {
        "street": "Bjørnåsveien 12",
        "postal_code": "1285",
        "postal_town": "Oslo",
    },
    "child": CHILD,
    "start_date": "2027-08-15",
    "hours": "4-days",
    "first_choice": "Blåbærtoppen barnehage",
    "special_needs": True,
    "special_needs_details": "Trenger tilrettelagt mat – nøtteallergi.",
}

EXPECTED_TEXT = {
    "nb": ["Kvittering", "Søknad om barnehageplass", "Sendt til", "Svarene dine", "Ja"],
    "nn": ["Kvittering", "Søknad om barnehageplass", "Sendt til", "Svara dine", "Ja"],
    "en": ["Receipt", "Apply for a kindergarten place", "Sent to", "Your answers", "Yes"],
}


@pytest.mark.parametrize("lang", LANGS)
def test_kindergarten_receipt(definitions: dict[str, ServiceDefinition], lang: str) -> None:
    definition = definitions["kindergarten-place"]
    pdf = render_receipt(
        definition,
        facts(
            KINDERGARTEN,
            attachments=[AttachedFile("legeerklæring.pdf", 1_250_000)],
            prefilled={"applicant_name": "population register"},
            chosen={"child": "Ola Nordmann Ås"},
        ),
        lang,
    )
    assert pdf.startswith(b"%PDF-")
    for text in readings(pdf):
        assert "K7M-4RX-9TE" in text
        for expected in EXPECTED_TEXT[lang]:
            assert expected in text, expected
        for page in definition.pages:  # every page is shown: special needs is true
            assert flat(page.title(lang)) in text
            for question in page.questions:
                assert flat(question.label(lang)) in text
        assert definition.pages[2].questions[0].options["4-days"](lang) in text  # type: ignore[index]
        assert "Blåbærtoppen barnehage" in text and "nøtteallergi" in text
        assert "Ola Nordmann Ås" in text  # the child by name, not by number
        assert PID[:6] + "*****" in text
        assert PID not in text and CHILD not in text
        assert definition.receipt.next_steps(lang) in text
        assert "legeerklæring.pdf" in text
        assert "60" in text
    # Shown in Norwegian time: 00:30 on 30 November.
    assert "30. november 2026 kl. 00:30" in flat(
        pdftotext(render_receipt(definition, facts(KINDERGARTEN), "nb"))
    )


def test_a_page_whose_condition_fails_is_left_out(
    definitions: dict[str, ServiceDefinition],
) -> None:
    definition = definitions["change-of-address"]
    data = {
        "name": "Per Ødegård",
        "old_address": {"street": "Gamleveien 1", "postal_code": "5003", "postal_town": "Bergen"},
        "street": "Æsøyveien 7",
        "postal_code": "9990",
        "postal_town": "Båtsfjord",
        "moved_on": "2026-11-01",
        "others_moving": False,
    }
    for lang in LANGS:
        for text in readings(render_receipt(definition, facts(data), lang)):
            assert definition.pages[0].title(lang) in text
            assert "Æsøyveien 7" in text and "Båtsfjord" in text
            assert definition.pages[3].title(lang) not in text  # "How many are moving"
            assert {"nb": "Nei", "nn": "Nei", "en": "No"}[lang] in text
            assert {"nb": "1. november 2026", "nn": "1. november 2026", "en": "1 November 2026"}[
                lang
            ] in text
            assert "5" in text  # answer within 5 days


@pytest.mark.parametrize("lang", LANGS)
def test_vat_return_with_a_thousand_rows(
    definitions: dict[str, ServiceDefinition], lang: str
) -> None:
    definition = definitions["vat-return"]
    rows = [
        {"description": f"Vare{n:04d} æøå", "basis": 1_000_000 + n, "rate": [0, 12, 15, 25][n % 4]}
        for n in range(1, 1001)
    ]
    data = {
        "business_name": "Fjordkraft Ålesund AS",
        "business_orgnr": ORGNR,
        "period": "2026-1",
        "lines": rows,
        "comment": "Korrigert – se vedlegg",
    }
    pdf = render_receipt(
        definition,
        facts(
            data,
            agency="Skatteetaten",
            party_name="Fjordkraft Ålesund AS",
            party_is_person=False,
            party_number=ORGNR,
        ),
        lang,
    )
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) > 15
    assert reader.metadata is not None and "K7M-4RX-9TE" in str(reader.metadata.title)
    poppler = flat(pdftotext(pdf))
    assert all(f"Vare{n:04d} æøå" in poppler for n in range(1, 1001))
    assert "1 001 000" in poppler or "1,001,000" in poppler
    assert ORGNR in poppler
    for label in definition.pages[1].questions[0].columns.values():  # type: ignore[union-attr]
        assert label(lang) in poppler
    period = definition.pages[0].questions[0].options["2026-1"](lang)  # type: ignore[index]
    assert period in poppler  # with its en dash (januar–februar)
    pages = len(reader.pages)
    last = {"nb": f"Side {pages} av {pages}", "nn": f"Side {pages} av {pages}"}
    assert last.get(lang, f"Page {pages} of {pages}") in poppler


def test_hostile_answers_do_not_break_the_receipt(
    definitions: dict[str, ServiceDefinition],
) -> None:
    definition = definitions["kindergarten-place"]
    hostile = (
        "Hei 😀👨‍👩‍👧 \u200f\u202eשלום\u202c \u200b\u2066x\u2069 ‘sitat’ – “anførsel” "
        "Ωmega ŁódŸ Ő \x00\x07\x1b[31m NUL\ttab "
    )
    data = {
        **KINDERGARTEN,
        "first_choice": hostile,
        "second_choice": "(paren) \\ backslash ) (",
        "special_needs_details": "lang tekst " * 9_000 + "ordutenmellomrom" * 500,
    }
    pdf = render_receipt(definition, facts(data, party_name="Zoë 🚀 Ås"), "nb")
    text = flat(pdftotext(pdf))
    assert "Hei" in text and "‘sitat’ – “anførsel”" in text and "Zoë" in text
    assert "(paren) \\ backslash ) (" in text
    assert "\x00" not in text and "\x1b" not in text
    assert text.count("lang tekst") == 9_000
    assert len(pypdf.PdfReader(io.BytesIO(pdf)).pages) > 5


def test_printable_keeps_norwegian_and_replaces_the_rest() -> None:
    assert printable("Blåbær – ‘øl’ … €") == "Blåbær – ‘øl’ … €"
    assert printable("😀") == "?"
    assert printable("a\u200fb\u202ec\u200bd") == "abcd"
    assert printable("Łódź Őr") == "?ódz Or"
    assert printable("x\x00y\tz\n") == "xy z\n"


def test_metadata(definitions: dict[str, ServiceDefinition]) -> None:
    pdf = render_receipt(definitions["kindergarten-place"], facts(KINDERGARTEN), "nn")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert reader.metadata is not None
    assert reader.metadata.title == "Kvittering K7M-4RX-9TE: Søknad om barnehageplass"
    assert reader.metadata.creation_date is not None
    assert reader.trailer["/Root"]["/Lang"] == "nn-NO"


def test_a_huge_table_cell_is_cut_short_not_run_off_the_page(
    definitions: dict[str, ServiceDefinition],
) -> None:
    rows = [
        {"description": "ord " * 20_000, "basis": 1, "rate": 25},
        {"description": "Neste", "basis": 2, "rate": 0},
    ]
    data = {"business_orgnr": ORGNR, "period": "2026-3", "lines": rows}
    pdf = render_receipt(
        definitions["vat-return"],
        facts(data, party_is_person=False, party_number=ORGNR),
        "en",
    )
    text = flat(pdftotext(pdf))
    assert "…" in text and "Neste" in text
