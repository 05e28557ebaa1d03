"""Digital mailbox providers and their encryption certificates.

Felles' own mailbox provider gets its RSA key at first start, under the data dir's keys
folder (never in the database, never in the repository); only its certificate is
published here for senders. In the demo, the other providers (Digipost, e-Boks) get
certificates of their own the same way, standing in for the real ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from felles.mailbox.models import MailboxProvider

PROVIDERS = {"felles": "Felles digital postkasse", "digipost": "Digipost", "eboks": "e-Boks"}
CERTIFICATE_DAYS = 730
RENEW_BEFORE = timedelta(days=30)


def _key(folder: Path, name: str) -> rsa.RSAPrivateKey:
    """The provider's private key, made once (mode 0600)."""
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


def _certificate(key: rsa.RSAPrivateKey, display_name: str) -> x509.Certificate:
    """A self-signed encryption certificate (in production a provider's comes from a CA)."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, display_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Felles"),
        ]
    )
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CERTIFICATE_DAYS))
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


async def ensure_providers(session: AsyncSession, keys_dir: Path) -> None:
    """Every provider has a certificate that is valid for at least another month."""
    rows = {p.name: p for p in await session.scalars(select(MailboxProvider))}
    now = datetime.now(UTC)
    for name, display_name in PROVIDERS.items():
        row = rows.get(name)
        if row is not None:
            current = x509.load_pem_x509_certificate(row.certificate_pem.encode())
            if current.not_valid_after_utc - RENEW_BEFORE > now:
                continue
        certificate = _certificate(_key(keys_dir, name), display_name)
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
