"""How fast letters are encrypted as CMS: `python bench/cms.py [--letters N]`.

Encrypts N letters of 100 KB (a typical PDF letter) and of 10 KB for one 2048-bit
recipient, in this process, with the profile's OAEP (SHA-1) and with SHA-256, through
the hand-made DER path (`encrypt`) and the asn1crypto-built one
(`encrypt_with_asn1crypto`). The clock covers encryption only (random key and IV,
RSA-OAEP, AES-256-CBC, DER). Prints a table and writes bench/results/cms.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from felles.mailbox.cms import (
    OaepHash,
    Recipient,
    encrypt,
    encrypt_with_asn1crypto,
    make_test_recipient,
)

RESULTS = Path(__file__).parent / "results" / "cms.json"
SIZES = {"100 KB": 100 * 1024, "10 KB": 10 * 1024}
PATHS: dict[str, Callable[[bytes, Recipient], bytes]] = {
    "hand-made DER": encrypt,
    "asn1crypto": encrypt_with_asn1crypto,
}


def measure(
    build: Callable[[bytes, Recipient], bytes], recipient: Recipient, size: int, letters: int
) -> dict[str, Any]:
    content = os.urandom(size)
    for _ in range(50):  # warm up
        build(content, recipient)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(letters):
        build(content, recipient)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "letters": letters,
        "bytes": size,
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "letters_per_s": round(letters / wall),
        "us_per_letter": round(wall / letters * 1e6, 1),
        "cpu_us_per_letter": round(cpu / letters * 1e6, 1),
        "mb_per_s": round(size * letters / wall / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--letters", type=int, default=20_000)
    args = parser.parse_args()
    _, certificate = make_test_recipient("Benchmark mailbox provider")
    rows = []
    hashes: tuple[OaepHash, ...] = ("sha1", "sha256")
    for oaep_hash in hashes:
        recipient = Recipient(certificate, oaep_hash=oaep_hash)
        for size_name, size in SIZES.items():
            for path_name, build in PATHS.items():
                result = measure(build, recipient, size, args.letters)
                rows.append({"oaep": oaep_hash, "size": size_name, "path": path_name, **result})
    table = Table(title=f"CMS encryption, {args.letters:,} letters each, one process")
    for column in ("OAEP", "letter", "DER built by", "letters/s", "µs/letter", "CPU µs", "MB/s"):
        table.add_column(column, justify="right" if column[0].islower() else "left")
    for row in rows:
        table.add_row(
            row["oaep"],
            row["size"],
            row["path"],
            f"{row['letters_per_s']:,}",
            f"{row['us_per_letter']:.1f}",
            f"{row['cpu_us_per_letter']:.1f}",
            f"{row['mb_per_s']:.1f}",
        )
    Console().print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "cms",
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg()[0],
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
