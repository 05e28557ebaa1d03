"""Virus scanning of uploads: ClamAV's daemon in production, the EICAR test string in
development, so a demo can show what happens to a "virus" without one.

`FELLES_VIRUS_SCANNER` chooses: `eicar` (default), `clamd://host:port`, or `none`.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Protocol
from urllib.parse import urlsplit

from felles.config import Settings

CHUNK = 64 * 1024
TIMEOUT_SECONDS = 30.0
MAX_REPLY = 4096
# The industry's harmless test "virus", built from parts so that this source file itself
# does not look like one to a scanner.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class ScannerUnavailable(RuntimeError):
    """The scanner could not give an answer (down, timed out, or an error reply)."""


class Scanner(Protocol):
    async def scan(self, content: bytes) -> bool:
        """True when the content is clean; ScannerUnavailable when it cannot tell."""
        ...


class EicarScanner:
    """Refuses content holding the EICAR test string; everything else is clean."""

    async def scan(self, content: bytes) -> bool:
        return EICAR not in content


class ClamdScanner:
    """clamd's INSTREAM command over TCP: `zINSTREAM\\0`, then chunks each prefixed with
    its length as a 4-byte big-endian unsigned integer, ended by a zero-length chunk;
    the reply is one NUL-terminated line, `stream: OK` or `stream: <name> FOUND`."""

    def __init__(self, host: str, port: int, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    async def scan(self, content: bytes) -> bool:
        try:
            reply = await asyncio.wait_for(self._instream(content), self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            raise ScannerUnavailable(f"clamd at {self.host}:{self.port}: {exc!r}") from exc
        if reply.endswith(" FOUND"):
            return False
        if reply.endswith(": OK"):
            return True
        # e.g. "INSTREAM size limit exceeded. ERROR": no verdict, so no pass.
        raise ScannerUnavailable(f"clamd at {self.host}:{self.port} replied {reply[:200]!r}")

    async def _instream(self, content: bytes) -> str:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(b"zINSTREAM\0")
            for start in range(0, len(content), CHUNK):
                chunk = content[start : start + CHUNK]
                writer.write(struct.pack("!I", len(chunk)) + chunk)
                await writer.drain()
            writer.write(struct.pack("!I", 0))
            await writer.drain()
            reply = await reader.readuntil(b"\0")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return reply[:MAX_REPLY].rstrip(b"\0").decode("utf-8", "replace").strip()


def scanner_from_setting(value: str) -> Scanner | None:
    """The scanner a FELLES_VIRUS_SCANNER value names (None: no scanning)."""
    value = value.strip()
    if value == "none":
        return None
    if value == "eicar":
        return EicarScanner()
    parts = urlsplit(value)
    if parts.scheme == "clamd" and parts.hostname and parts.port:
        return ClamdScanner(parts.hostname, parts.port)
    raise ValueError("FELLES_VIRUS_SCANNER must be eicar, none or clamd://host:port")


def scanner_from_settings(settings: Settings) -> Scanner | None:
    return scanner_from_setting(settings.virus_scanner)
