"""Digital mailbox providers and their encryption certificates.

Felles' own mailbox provider gets its RSA key at first start, under the data dir's keys
folder (never in the database, never in the repository); only its certificate is
published here for senders. In the demo, the other providers (Digipost, e-Boks) get
certificates of their own the same way, standing in for the real ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from felles.mailbox import cms
from felles.mailbox.cms import self_signed_certificate
from felles.mailbox.models import MailboxProvider

PROVIDERS = {"felles": "Felles digital postkasse", "digipost": "Digipost", "eboks": "e-Boks"}
# The print provider prints and posts letters to people without a digital mailbox; its
# certificate is the print queue's, never offered as a mailbox.
PRINT_PROVIDER = "print"
PRINT_DISPLAY_NAME = "Felles print and post"
RENEW_BEFORE = timedelta(days=30)


def private_key(folder: Path, name: str) -> rsa.RSAPrivateKey:
    """The provider's private key, made once (mode 0600): only the provider's own side
    (Felles' mailbox opening a letter for its owner, the print provider) reads it."""
    path = folder / f"mailbox-{name}.key"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


async def ensure_providers(session: AsyncSession, keys_dir: Path) -> None:
    """Every provider has a certificate that is valid for at least another month."""
    rows = {p.name: p for p in await session.scalars(select(MailboxProvider))}
    now = datetime.now(UTC)
    for name, display_name in {**PROVIDERS, PRINT_PROVIDER: PRINT_DISPLAY_NAME}.items():
        row = rows.get(name)
        if row is not None:
            current = x509.load_pem_x509_certificate(row.certificate_pem.encode())
            if current.not_valid_after_utc - RENEW_BEFORE > now:
                continue
        certificate = self_signed_certificate(private_key(keys_dir, name), display_name)
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        if row is None:
            session.add(
                MailboxProvider(
                    name=name, display_name=display_name, certificate_pem=pem, updated_at=now
                )
            )
        else:
            row.certificate_pem, row.updated_at = pem, now


async def certificates(session: AsyncSession) -> dict[str, MailboxProvider]:
    return {p.name: p for p in await session.scalars(select(MailboxProvider))}


def _earlier_certificate(
    sealed: bytes, key: rsa.RSAPrivateKey, current: x509.Certificate
) -> x509.Certificate:
    """The certificate a letter was sealed to before the current one replaced it. A
    renewal keeps the key, the name and the issuer and changes the serial number, which
    is how a letter names its recipient: rebuild that certificate from the key, for
    `cms.decrypt` to find the letter's recipient by. Anything else is not ours."""
    info = asn1_cms.ContentInfo.load(sealed)
    issuer = current.issuer.public_bytes()
    for recipient in info["content"]["recipient_infos"]:
        rid = recipient.chosen["rid"] if recipient.name == "ktri" else None
        if (
            rid is None
            or rid.name != "issuer_and_serial_number"
            or rid.chosen["issuer"].dump() != issuer
        ):
            continue
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(current.subject)
            .issuer_name(current.issuer)
            .public_key(key.public_key())
            .serial_number(rid.chosen["serial_number"].native)
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(minutes=5))
            .sign(key, hashes.SHA256())
        )
    raise cms.NotForThisRecipient("The letter is not sealed to the print queue's key")


def unseal(sealed: bytes, key: rsa.RSAPrivateKey, current: x509.Certificate) -> bytes:
    """Open a letter sealed to this provider, also one sealed to its certificate before
    the last renewal (same key, another serial number)."""
    try:
        return cms.decrypt(sealed, key, current)
    except cms.NotForThisRecipient:
        return cms.decrypt(sealed, key, _earlier_certificate(sealed, key, current))
