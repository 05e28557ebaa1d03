"""Print-ready letters: an address page first, then the letter's documents, in one PDF.

The address page puts the recipient's name and address where a C5 window envelope shows
it (20 mm from the left, 45 mm from the top) and the sender under the window, so the
print provider can print, fold and post without looking inside.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from felles.portal.receipt_pdf import ENCODING, printable

FONT = "Helvetica"


@dataclass(frozen=True, slots=True)
class PostalAddress:
    name: str
    street: str
    postal_code: str
    postal_town: str

    def lines(self) -> list[str]:
        return [self.name, self.street, f"{self.postal_code} {self.postal_town}"]


def address_page(address: PostalAddress, sender: str, title: str, reference: str) -> bytes:
    """One A4 page: the address in the envelope window, who sent it and what it is."""
    pdf = FPDF(unit="mm", format="A4")
    pdf.core_fonts_encoding = ENCODING  # –, “ ” and … show, as on the portal's receipts
    pdf.set_auto_page_break(False)
    pdf.set_creator("Felles")
    pdf.set_title(printable(title))
    pdf.add_page()
    pdf.set_font(FONT, "", 8)
    pdf.set_xy(20, 38)
    pdf.cell(90, 4, printable(f"Returadresse: {sender}"))
    pdf.set_font(FONT, "", 11)
    for index, line in enumerate(address.lines()):
        pdf.set_xy(20, 45 + index * 5.5)
        pdf.cell(90, 5.5, printable(line))
    pdf.set_font(FONT, "B", 12)
    pdf.set_xy(20, 110)
    pdf.cell(170, 6, printable(title))
    pdf.set_font(FONT, "", 10)
    pdf.set_xy(20, 118)
    pdf.cell(170, 5, printable(f"Fra / From: {sender}"))
    pdf.set_xy(20, 124)
    pdf.cell(170, 5, printable(f"Referanse / Reference: {reference}"))
    return bytes(pdf.output())


def print_ready(
    address: PostalAddress,
    sender: str,
    title: str,
    reference: str,
    documents: Sequence[bytes],
) -> bytes:
    """The address page followed by every document's pages, as one PDF."""
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(address_page(address, sender, title, reference))))
    for document in documents:
        writer.append(PdfReader(io.BytesIO(document)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
