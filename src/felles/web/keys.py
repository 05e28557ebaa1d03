"""Secrets Felles makes for itself on first start, kept under the data dir, never in git."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class DataDirError(RuntimeError):
    """The data dir cannot be used; the message says how to fix it."""


def ensure_data_dir(data_dir: Path) -> None:
    """Create the data dir (and keys/) and prove it is writable, or say why not."""
    try:
        (data_dir / "keys").mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise DataDirError(
            f"The data directory {data_dir} is not writable ({exc.strerror}). "
            "Point FELLES_DATA_DIR at a directory Felles may write to."
        ) from exc


def load_or_create_secret(path: Path, nbytes: int = 32) -> bytes:
    """A random secret stored with owner-only permissions; made once, then reused.

    Written to a temporary file and linked into place, so several workers starting at
    once agree on one secret.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_bytes(nbytes).hex())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    return bytes.fromhex(path.read_text().strip())
