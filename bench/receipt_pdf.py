"""How fast receipt PDFs render: `python bench/receipt_pdf.py [--runs N]`.

Renders the kindergarten receipt (one or two pages) and a VAT return with 1000 lines
(about 26 pages) in bokmål, in this process, with no database: the clock covers
`render_receipt` only. Prints a table (p50, p95, max) and writes
bench/results/receipt_pdf.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from felles.portal.definition import ServiceDefinition, parse
from felles.portal.demo import example_documents
from felles.portal.receipt_pdf import AttachedFile, ReceiptFacts, render_receipt

RESULTS = Path(__file__).parent / "results" / "receipt_pdf.json"


def cases() -> dict[str, tuple[ServiceDefinition, ReceiptFacts]]:
    definitions = {str(d["code"]): parse(d) for d in example_documents()}
    rng = random.Random(2016)
    person = ReceiptFacts(
        reference="K7M-4RX-9TE",
        submitted_at=datetime.now(UTC),
        agency="Oslo kommune",
        party_name="Kari Nordmann",
        party_is_person=True,
        party_number="01819012345",
        submitted_by="Kari Nordmann",
        data={
            "applicant_name": "Kari Nordmann",
            "child": "01812412345",
            "start_date": "2027-08-15",
            "hours": "4-days",
            "first_choice": "Blåbærtoppen barnehage",
            "special_needs": True,
            "special_needs_details": "Nøtteallergi – trenger tilpasset mat.",
        },
        attachments=(AttachedFile("legeerklæring.pdf", 1_250_000),),
        chosen={"child": "Ola Nordmann"},
    )
    lines = [
        {"description": f"Salg av varer {n} æøå", "basis": rng.randrange(10**9), "rate": 25}
        for n in range(1000)
    ]
    business = ReceiptFacts(
        reference="K7M-4RX-9TE",
        submitted_at=datetime.now(UTC),
        agency="Skatteetaten",
        party_name="Fjordkraft AS",
        party_is_person=False,
        party_number="912345670",
        submitted_by="Kari Nordmann",
        data={"business_orgnr": "912345670", "period": "2026-1", "lines": lines},
    )
    return {
        "kindergarten (1-2 pages)": (definitions["kindergarten-place"], person),
        "VAT return, 1000 lines": (definitions["vat-return"], business),
    }


def measure(definition: ServiceDefinition, facts: ReceiptFacts, runs: int) -> dict[str, Any]:
    render_receipt(definition, facts, "nb")  # warm caches (catalogs, widths)
    times = []
    size = 0
    for _ in range(runs):
        start = time.perf_counter()
        size = len(render_receipt(definition, facts, "nb"))
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "runs": runs,
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
        "max_ms": round(times[-1], 2),
        "bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = {name: measure(d, f, args.runs) for name, (d, f) in cases().items()}
    table = Table(title=f"Receipt PDF rendering ({args.runs} runs each, one process)")
    for column in ("receipt", "p50 ms", "p95 ms", "max ms", "bytes"):
        table.add_column(column, justify="left" if column == "receipt" else "right")
    for name, r in results.items():
        table.add_row(name, *(str(r[k]) for k in ("p50_ms", "p95_ms", "max_ms", "bytes")))
    Console().print(table)
    report = {
        "measured_at": datetime.now(UTC).isoformat(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
