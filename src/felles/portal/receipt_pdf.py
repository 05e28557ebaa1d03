"""The receipt as a PDF: proof of what was sent, to whom and when, to keep and print.

Pure CPU work with no I/O, so it can run in a worker process: everything it shows comes
in `ReceiptFacts`, looked up beforehand (`receipts.py`). The built-in Helvetica in
Windows-1252 covers Norwegian text (æøå, –, ’, €) and is fast: no font file to embed.
Anything the font cannot show (emoji, other scripts) becomes "?", and invisible
formatting characters (direction marks) are dropped, so no answer can break a receipt.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from fpdf import FPDF
from fpdf.fonts import CORE_FONTS_CHARWIDTHS

from felles.portal.attachments import format_size
from felles.portal.definition import Question, ServiceDefinition
from felles.registry.numbers import mask_pid
from felles.web.i18n import translations

OSLO = ZoneInfo("Europe/Oslo")
ENCODING = "cp1252"  # what the PDF's WinAnsiEncoding shows with the core fonts
FONT = "Helvetica"
BODY_PT = 10.5
SMALL_PT = 8.5
LINE_MM = 5.2
MARGIN_MM = 20.0
PDF_LANG = {"nb": "nb-NO", "nn": "nn-NO", "en": "en"}
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Look-alikes the font lacks, shown as the nearest character it has.
_NEAREST = {
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2015": "-", "\u2212": "-",
    "\u201b": "'", "\u2032": "'", "\u2033": '"',
    "\u2002": " ", "\u2003": " ", "\u2009": " ", "\u202f": " ", "\u2007": " ",
    "\u2028": "\n", "\u2029": "\n",
}  # fmt: skip


def N_(message: str) -> str:
    """Marks a string for translation; translated when the receipt is drawn."""
    return message


FILLED_IN = N_("Filled in for you")


@dataclass(frozen=True, slots=True)
class AttachedFile:
    filename: str
    size: int


@dataclass(frozen=True, slots=True)
class ReceiptFacts:
    """Everything a receipt shows besides the service definition, looked up already."""

    reference: str
    submitted_at: datetime  # aware; shown in Norwegian time
    agency: str
    party_name: str
    party_is_person: bool
    # A person's national identity number (shown masked only) or a business's orgnr.
    party_number: str
    submitted_by: str
    data: Mapping[str, Any]
    attachments: Sequence[AttachedFile] = ()
    # Field -> the register a value was filled in from ("population register").
    prefilled: Mapping[str, str] = field(default_factory=dict)
    # Field -> what to show for a value chosen from the registers (a child's name).
    chosen: Mapping[str, str] = field(default_factory=dict)


def printable(text: str) -> str:
    """Text the core font can show: unknown characters become "?", invisible ones go."""
    if not _UNSAFE.search(text):
        try:
            text.encode(ENCODING)
        except UnicodeEncodeError:
            pass
        else:
            return text
    return "".join(_printable_char(c) for c in text)


@lru_cache(maxsize=4096)
def _printable_char(char: str) -> str:
    if char in "\n\t":
        return " " if char == "\t" else char
    if char in _NEAREST:
        return _NEAREST[char]
    category = unicodedata.category(char)
    if category in ("Cc", "Cf", "Mn", "Me", "Cs", "Co", "Cn"):
        return ""  # controls, direction marks, zero-width joiners, stray accents
    try:
        char.encode(ENCODING)
    except UnicodeEncodeError:
        # A letter with an accent the font lacks: the base letter (ő -> o) beats "?".
        base = unicodedata.normalize("NFKD", char)[:1]
        try:
            base.encode(ENCODING)
        except UnicodeEncodeError:
            return "?"
        return base if base.isalnum() else "?"
    return char


@lru_cache(maxsize=8)
def _char_widths(fontkey: str) -> dict[str, int]:
    """Each character's width in the core font (thousandths of the font size), by the
    character itself rather than its Windows-1252 byte, so measuring needs no encoding."""
    widths = CORE_FONTS_CHARWIDTHS[fontkey]
    table: dict[str, int] = {}
    for byte in range(32, 256):
        try:
            char = bytes([byte]).decode(ENCODING)
        except UnicodeDecodeError:
            continue
        table[char] = int(widths[chr(byte)])
    return table


def _width(text: str, fontkey: str, size: float) -> float:
    """The width of printable text (see `printable`) in a core font, in the size's unit."""
    widths = _char_widths(fontkey)
    return sum(map(widths.__getitem__, text)) * 0.001 * size


def _number(value: float, lang: str) -> str:
    """12 345 678 in Norwegian (a no-break space between thousands), 12,345,678 in English."""
    text = f"{value:,}" if isinstance(value, int) else f"{value:,.2f}".rstrip("0").rstrip(".")
    if lang == "en":
        return text
    return text.replace(",", "\u00a0").replace(".", ",")


class _Writer:
    """Draws one receipt in one language."""

    def __init__(self, definition: ServiceDefinition, facts: ReceiptFacts, lang: str) -> None:
        self.definition = definition
        self.facts = facts
        self.lang = lang if lang in PDF_LANG else "nb"
        self._ = translations(self.lang).gettext
        self.ngettext = translations(self.lang).ngettext
        self.pdf = FPDF(format="A4", unit="mm")
        self.pdf.core_fonts_encoding = ENCODING
        self.pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        self.pdf.set_auto_page_break(True, margin=20)
        self.width = self.pdf.epw
        self._font: tuple[str, float] | None = None

    # --- building blocks ---------------------------------------------------------------
    # Text is laid out here, not with fpdf2's multi_cell: greedy word wrapping with the
    # core font's width table is some twenty times cheaper, and receipts are mostly text.

    def font(self, size: float = BODY_PT, style: str = "") -> None:
        if (style, size) != self._font:  # fpdf2's set_font is not free; most calls repeat
            self.pdf.set_font(FONT, style, size)
            self._font = (style, size)

    def width_of(self, text: str) -> float:
        """The width of printable text in the current font, in mm."""
        return _width(text, self.pdf.font_family + self.pdf.font_style, self.pdf.font_size)

    def wrap(self, text: str, width: float) -> list[str]:
        """Printable text broken into lines of at most `width` mm; a word longer than a
        line is broken between characters."""
        lines: list[str] = []
        space = self.width_of(" ")
        for paragraph in text.split("\n"):
            words: list[str] = []
            used = 0.0
            for word in paragraph.split(" "):
                size = self.width_of(word)
                while size > width and len(word) > 1:
                    if words:
                        lines.append(" ".join(words))
                        words, used = [], 0.0
                    cut = self._fits(word, width)
                    lines.append(word[:cut])
                    word = word[cut:]
                    size = self.width_of(word)
                if words and used + space + size > width:
                    lines.append(" ".join(words))
                    words, used = [], 0.0
                used += (space if words else 0.0) + size
                words.append(word)
            lines.append(" ".join(words))
        return lines

    def _fits(self, word: str, width: float) -> int:
        """How many of the word's first characters fit in `width` (at least one)."""
        used = 0.0
        for index, char in enumerate(word):
            used += self.width_of(char)
            if used > width:
                return max(index, 1)
        return len(word)

    def lines_at(self, x: float, lines: list[str], height: float, align_right: float = 0) -> None:
        """Lines from the current y, breaking pages as needed; with `align_right` each
        line ends at that x instead of starting at `x`."""
        pdf = self.pdf
        y = pdf.get_y()
        for line in lines:
            if y + height > pdf.page_break_trigger:
                pdf.add_page()
                y = pdf.get_y()
            left = align_right - self.width_of(line) if align_right else x
            if line:
                pdf.text(left, y + 0.5 * height + 0.3 * pdf.font_size, line)
            y += height
        pdf.set_y(y)

    def paragraph(
        self, text: str, *, size: float = BODY_PT, style: str = "", x: float = MARGIN_MM
    ) -> None:
        self.font(size, style)
        width = self.width - (x - MARGIN_MM)
        self.lines_at(x, self.wrap(printable(text), width), max(size * 0.5, LINE_MM))

    def heading(self, text: str, size: float = 13) -> None:
        self.keep_room(size * 0.5 + 3 * LINE_MM)
        self.pdf.ln(4)
        self.paragraph(text, size=size, style="B")
        self.pdf.ln(1.5)

    def keep_room(self, height: float) -> None:
        """A page break now if `height` will not fit, so a heading stays with its text."""
        if self.pdf.get_y() + height > self.pdf.page_break_trigger:
            self.pdf.add_page()

    def pairs(self, rows: Iterable[tuple[str, str]], label_width: float = 45) -> None:
        """Short facts side by side: the label left, the value right."""
        pdf = self.pdf
        for label, value in rows:
            self.font(BODY_PT, "B")
            labels = self.wrap(printable(label), label_width - 3)
            self.font()
            values = self.wrap(printable(value), self.width - label_width)
            self.keep_room(max(len(labels), len(values)) * LINE_MM)
            top = pdf.get_y()
            self.font(BODY_PT, "B")
            self.lines_at(MARGIN_MM, labels, LINE_MM)
            end = pdf.get_y()
            pdf.set_y(top)
            self.font()
            self.lines_at(MARGIN_MM + label_width, values, LINE_MM)
            pdf.set_y(max(end, pdf.get_y()) + 1)

    # --- the receipt -------------------------------------------------------------------

    def render(self) -> bytes:
        _, facts, pdf = self._, self.facts, self.pdf
        name = self.definition.name(self.lang)
        pdf.set_title(printable(f"{_('Receipt')} {facts.reference}: {name}"))
        pdf.set_subject(printable(name))
        pdf.set_author(printable(facts.agency))
        pdf.set_creator("Felles")
        pdf.set_lang(PDF_LANG[self.lang])
        pdf.set_creation_date(datetime.now(UTC))
        pdf.add_page()
        self.top()
        self.answers()
        self.files()
        self.next_steps()
        self.footers()
        return bytes(pdf.output())

    def footers(self) -> None:
        """The reference and "page 2 of 26" at the foot of every page, written once the
        count is known (fpdf2's page-count alias works only through its slower cells)."""
        pdf, last = self.pdf, self.pdf.page
        title, where = self._("Receipt"), self._("Page %(page)s of %(pages)s")
        for number in range(1, pdf.pages_count + 1):
            pdf.page = number
            pdf.current_font_is_set_on_page = False  # this page's stream has not set it
            self.font(SMALL_PT)
            page = where % {"page": number, "pages": pdf.pages_count}
            text = printable(f"{title} {self.facts.reference}  ·  {page}")
            pdf.set_text_color(90, 90, 90)
            pdf.text((pdf.w - self.width_of(text)) / 2, pdf.h - 10, text)
            pdf.set_text_color(0, 0, 0)
        pdf.page = last

    def top(self) -> None:
        _, facts, pdf = self._, self.facts, self.pdf
        self.paragraph(_("Receipt"), size=24, style="B")
        pdf.ln(1)
        self.paragraph(self.definition.name(self.lang), size=13)
        pdf.ln(4)
        # The confirmation panel: done, and the number to quote.
        top = pdf.get_y()
        pdf.set_fill_color(230, 242, 236)
        pdf.rect(MARGIN_MM, top, self.width, 40, style="F")
        self.font(15, "B")
        pdf.text(MARGIN_MM + 5, top + 10, printable(_("Your submission is complete")))
        self.font(BODY_PT)
        pdf.text(MARGIN_MM + 5, top + 18, printable(_("Your reference number")))
        self.font(22, "B")
        pdf.set_char_spacing(1.5)
        pdf.text(MARGIN_MM + 5, top + 31, printable(facts.reference))
        pdf.set_char_spacing(0)
        pdf.set_y(top + 45)
        self.paragraph(self.definition.receipt.text(self.lang))
        pdf.ln(3)
        if facts.party_is_person:
            number = _("national identity number %(number)s") % {
                "number": mask_pid(facts.party_number)
            }
        else:
            number = _("organisation number %(number)s") % {"number": facts.party_number}
        when = format_datetime(
            facts.submitted_at.astimezone(OSLO),
            "d MMMM y 'at' HH:mm" if self.lang == "en" else "d. MMMM y 'kl.' HH:mm",
            tzinfo=OSLO,
            locale=self.lang,
        )
        self.pairs(
            [
                (_("Sent"), when),
                (_("Sent to"), facts.agency),
                (_("Sent by"), facts.submitted_by),
                (_("On behalf of"), f"{facts.party_name}, {number}"),
            ]
        )

    def answers(self) -> None:
        _, data = self._, self.facts.data
        self.heading(_("Your answers"), 15)
        asked = {q.field for p in self.definition.pages for q in p.questions}
        registers = [r for r in self.definition.prefill if r.field not in asked and r.label]
        if any(data.get(r.field) is not None for r in registers):
            self.heading(_("From the public registers"), 11.5)
            for rule in registers:
                value = data.get(rule.field)
                if value is None or rule.label is None:
                    continue
                schema = self.definition.properties().get(rule.field, {})
                self.keep_room(2 * LINE_MM)
                self.paragraph(rule.label(self.lang), style="B")
                self.paragraph(self.value(value, schema))
                self.pdf.set_text_color(80, 80, 80)
                self.paragraph(_(self.facts.prefilled.get(rule.field) or FILLED_IN), size=SMALL_PT)
                self.pdf.set_text_color(0, 0, 0)
                self.pdf.ln(2)
        for page in self.definition.pages:
            if not page.shown(dict(data)):
                continue
            self.heading(page.title(self.lang), 11.5)
            for question in page.questions:
                self.answer(question, data.get(question.field))

    def answer(self, question: Question, value: Any) -> None:
        _, pdf = self._, self.pdf
        label = question.label(self.lang)
        schema = self.definition.properties().get(question.field, {})
        if question.columns is not None and isinstance(value, list):
            self.keep_room(3 * LINE_MM)
            self.paragraph(label, style="B")
            self.table(question, schema, value)
            pdf.ln(2)
            return
        self.keep_room(2 * LINE_MM)
        self.paragraph(label, style="B")
        self.paragraph(self.shown(question, schema, value))
        source = self.facts.prefilled.get(question.field)
        if source is not None:
            pdf.set_text_color(80, 80, 80)
            self.paragraph(_(source or FILLED_IN), size=SMALL_PT)
            pdf.set_text_color(0, 0, 0)
        pdf.ln(2)

    def shown(self, question: Question, schema: Mapping[str, Any], value: Any) -> str:
        """An answer as a person reads it."""
        _ = self._
        if value is None or value == "" or value == []:
            return _("Not answered")
        if question.options and str(value) in question.options:
            return question.options[str(value)](self.lang)
        if question.options_from:
            # A choice from the registers (a child): its name, never the full number.
            return self.facts.chosen.get(question.field) or mask_pid(str(value))
        return self.value(value, schema)

    def value(self, value: Any, schema: Mapping[str, Any]) -> str:
        _ = self._
        if isinstance(value, bool):
            return _("Yes") if value else _("No")
        if isinstance(value, int | float):
            return _number(value, self.lang)
        if isinstance(value, dict):
            return "\n".join(self._object_lines(value))
        if isinstance(value, list):
            return "\n".join(self.value(item, {}) for item in value)
        text = str(value)
        if schema.get("format") == "date":
            try:
                day = date.fromisoformat(text)
            except ValueError:
                return text
            return format_date(day, "d MMMM y" if self.lang == "en" else "d. MMMM y", self.lang)
        return text

    def _object_lines(self, value: Mapping[str, Any]) -> list[str]:
        """An address as it is written on an envelope; other objects as their values."""
        if "street" in value or "postal_code" in value:
            town = " ".join(str(value.get(k) or "") for k in ("postal_code", "postal_town"))
            return [line for line in (str(value.get("street") or ""), town.strip()) if line]
        return [self.value(v, {}) for v in value.values() if v not in (None, "")]

    def table(self, question: Question, schema: Mapping[str, Any], rows: list[Any]) -> None:
        """A repeating group: a header row of the columns' labels, repeated on every
        page, and one row per item. Cells are drawn with `text()`, the cheapest call,
        so a thousand rows take a fraction of a second."""
        pdf, columns = self.pdf, question.columns or {}
        props: Mapping[str, Any] = (schema.get("items") or {}).get("properties", {})
        keys = list(columns)
        numeric = [props.get(k, {}).get("type") in ("integer", "number") for k in keys]
        number_w, numeric_w = 12.0, 34.0
        text_w = (self.width - number_w - numeric_w * sum(numeric)) / max(
            len(keys) - sum(numeric), 1
        )
        widths = [number_w] + [numeric_w if n else text_w for n in numeric]
        right = [True, *numeric]
        header = ["#"] + [printable(columns[k](self.lang)) for k in keys]
        pad = 1.5
        line = 4.6
        self.font(9)

        # A cell never runs past a page: what would is cut short with an ellipsis.
        most = int((pdf.page_break_trigger - pdf.t_margin) / line) - 4

        def cell_lines(text: str, width: float) -> list[str]:
            if self.width_of(text) <= width - 2 * pad:
                return [text]
            lines = self.wrap(text, width - 2 * pad)
            return lines if len(lines) <= most else [*lines[: most - 1], "…"]

        def draw(cells: list[str], bold: bool) -> None:
            self.font(9, "B" if bold else "")
            wrapped = [cell_lines(text, w) for text, w in zip(cells, widths, strict=True)]
            height = max(len(w) for w in wrapped) * line + 1.6
            if pdf.get_y() + height > pdf.page_break_trigger:
                pdf.add_page()
                if not bold:
                    draw(header, True)
                    self.font(9)
            top = pdf.get_y()
            x = MARGIN_MM
            for lines, width, align_right in zip(wrapped, widths, right, strict=True):
                for index, text in enumerate(lines):
                    left = x + pad
                    if align_right:
                        left = x + width - pad - self.width_of(text)
                    pdf.text(left, top + 0.8 + line * (index + 0.75), text)
                x += width
            shade = 0 if bold else 180
            pdf.set_draw_color(shade, shade, shade)
            pdf.line(MARGIN_MM, top + height, MARGIN_MM + self.width, top + height)
            pdf.set_y(top + height)

        draw(header, True)
        for number, row in enumerate(rows, start=1):
            item = row if isinstance(row, dict) else {}
            cells = [str(number)] + [
                printable(self.value(item.get(k), props.get(k, {})) if k in item else "")
                for k in keys
            ]
            draw(cells, False)
        self.font()

    def files(self) -> None:
        if not self.facts.attachments:
            return
        self.heading(self._("Attachments"), 13)
        for attached in self.facts.attachments:
            self.paragraph(f"{attached.filename} ({format_size(attached.size, self.lang)})")

    def next_steps(self) -> None:
        receipt = self.definition.receipt
        self.heading(self._("What happens next"), 13)
        self.paragraph(receipt.next_steps(self.lang))
        days = receipt.answer_within_days
        if days:
            self.pdf.ln(1.5)
            self.paragraph(
                self.ngettext(
                    "You can expect an answer within %(days)s day.",
                    "You can expect an answer within %(days)s days.",
                    days,
                )
                % {"days": days}
            )
        self.pdf.ln(1.5)
        self.paragraph(self._("Keep this receipt. You also find it in your inbox."))


def render_receipt(definition: ServiceDefinition, receipt: ReceiptFacts, lang: str) -> bytes:
    """The receipt of one submission as PDF bytes, in bokmål, nynorsk or English."""
    return _Writer(definition, receipt, lang).render()
