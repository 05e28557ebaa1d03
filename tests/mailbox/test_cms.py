"""CMS EnvelopedData for letters: round trips, openssl interop both ways, refusals."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from felles.mailbox.cms import (
    CertificateRefused,
    InvalidMessage,
    NotForThisRecipient,
    OaepHash,
    Recipient,
    UnsupportedAlgorithm,
    decrypt,
    encrypt,
    encrypt_with_asn1crypto,
    make_test_recipient,
)

KeyPair = tuple[rsa.RSAPrivateKey, x509.Certificate]


@pytest.fixture(scope="module")
def provider() -> KeyPair:
    return make_test_recipient("Felles test mailbox provider")


@pytest.fixture(scope="module")
def other() -> KeyPair:
    return make_test_recipient("Another mailbox provider")


@pytest.fixture
def pem_files(provider: KeyPair, tmp_path: Path) -> tuple[Path, Path]:
    key, certificate = provider
    key_path = tmp_path / "key.pem"
    cert_path = tmp_path / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def openssl(*args: str | Path, stdin: bytes = b"") -> bytes:
    done = subprocess.run(
        ["openssl", *map(str, args)], input=stdin, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


@pytest.mark.parametrize("oaep_hash", ["sha1", "sha256"])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1_000_000])
def test_round_trip(provider: KeyPair, oaep_hash: OaepHash, size: int) -> None:
    key, certificate = provider
    content = os.urandom(size)
    recipient = Recipient(certificate, oaep_hash=oaep_hash)
    assert decrypt(encrypt(content, recipient), key, certificate) == content


def test_each_letter_has_its_own_key_and_iv(provider: KeyPair) -> None:
    recipient = Recipient(provider[1])
    first, second = encrypt(b"same", recipient), encrypt(b"same", recipient)
    assert first != second


@pytest.mark.parametrize("oaep_hash", ["sha1", "sha256"])
@pytest.mark.parametrize("size", [0, 1, 100_000])
def test_hand_made_der_equals_asn1crypto_encoding(
    provider: KeyPair, oaep_hash: OaepHash, size: int
) -> None:
    recipient = Recipient(provider[1], oaep_hash=oaep_hash)
    der = encrypt(os.urandom(size), recipient)
    assert asn1_cms.ContentInfo.load(der).dump(force=True) == der
    # The asn1crypto-built letter has the same layout apart from the random parts.
    reference = encrypt_with_asn1crypto(b"\0" * size, recipient)
    assert len(reference) == len(der)
    parsed = asn1_cms.ContentInfo.load(der)["content"]
    parsed_reference = asn1_cms.ContentInfo.load(reference)["content"]
    ours, theirs = parsed["recipient_infos"][0].chosen, parsed_reference["recipient_infos"][0]
    assert ours["rid"].dump() == theirs.chosen["rid"].dump()
    assert ours["key_encryption_algorithm"].dump() == (
        theirs.chosen["key_encryption_algorithm"].dump()
    )


def test_profile_structure(provider: KeyPair) -> None:
    """The profile's fields, read back with asn1crypto (version 0, one ktri, aes256)."""
    der = encrypt(b"letter", Recipient(provider[1]))
    info = asn1_cms.ContentInfo.load(der)
    assert info["content_type"].native == "enveloped_data"
    enveloped = info["content"]
    assert enveloped["version"].native == "v0"
    assert not enveloped["originator_info"]
    assert len(enveloped["recipient_infos"]) == 1
    ktri = enveloped["recipient_infos"][0].chosen
    assert ktri["version"].native == "v0"
    assert ktri["rid"].name == "issuer_and_serial_number"
    assert ktri["rid"].chosen["serial_number"].native == provider[1].serial_number
    algorithm = ktri["key_encryption_algorithm"]
    assert algorithm["algorithm"].native == "rsaes_oaep"
    assert algorithm["parameters"].dump() == b"\x30\x00"  # profile: default (SHA-1) params
    content = enveloped["encrypted_content_info"]
    assert content["content_type"].native == "data"
    assert content["content_encryption_algorithm"]["algorithm"].native == "aes256_cbc"
    assert len(content["content_encryption_algorithm"]["parameters"].native) == 16


@pytest.mark.parametrize("oaep_hash", ["sha1", "sha256"])
def test_openssl_decrypts_what_felles_encrypted(
    provider: KeyPair, pem_files: tuple[Path, Path], tmp_path: Path, oaep_hash: OaepHash
) -> None:
    key_path, cert_path = pem_files
    content = os.urandom(100_000) + "Brev fra Skatteetaten æøå".encode()
    letter = tmp_path / "letter.der"
    letter.write_bytes(encrypt(content, Recipient(provider[1], oaep_hash=oaep_hash)))
    plain = openssl(
        "cms", "-decrypt", "-binary", "-inform", "DER", "-in", letter,
        "-inkey", key_path, "-recip", cert_path,
    )  # fmt: skip
    assert plain == content


@pytest.mark.parametrize(
    "keyopts",
    [
        ["-keyopt", "rsa_padding_mode:oaep"],
        [
            "-keyopt", "rsa_padding_mode:oaep",
            "-keyopt", "rsa_oaep_md:sha256",
            "-keyopt", "rsa_mgf1_md:sha256",
        ],
    ],
    ids=["oaep-default-sha1", "oaep-sha256"],
)  # fmt: skip
@pytest.mark.parametrize("cipher", ["-aes256", "-aes128"])
def test_felles_decrypts_what_openssl_encrypted(
    provider: KeyPair,
    pem_files: tuple[Path, Path],
    tmp_path: Path,
    keyopts: list[str],
    cipher: str,
) -> None:
    _, cert_path = pem_files
    content = os.urandom(4321)
    plain_path = tmp_path / "plain.bin"
    plain_path.write_bytes(content)
    der = openssl(
        "cms", "-encrypt", "-binary", "-outform", "DER", cipher, "-in", plain_path,
        "-recip", cert_path, *keyopts,
    )  # fmt: skip
    assert decrypt(der, *provider) == content


def test_openssl_prints_the_profile_structure(provider: KeyPair, tmp_path: Path) -> None:
    letter = tmp_path / "letter.der"
    letter.write_bytes(encrypt(b"hello", Recipient(provider[1])))
    printed = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", letter).decode()
    assert "contentType: pkcs7-envelopedData" in printed
    assert "d.issuerAndSerialNumber" in printed
    assert "algorithm: rsaesOaep" in printed
    assert "algorithm: aes-256-cbc" in printed
    assert "contentType: pkcs7-data" in printed
    assert printed.count("d.ktri") == 1


def test_pkcs1_v15_key_transport_is_refused(
    provider: KeyPair, pem_files: tuple[Path, Path]
) -> None:
    _, cert_path = pem_files
    der = openssl(
        "cms", "-encrypt", "-binary", "-outform", "DER", "-aes256", "-recip", cert_path,
        stdin=b"old style",
    )  # fmt: skip
    with pytest.raises(UnsupportedAlgorithm, match=r"PKCS#1 v1\.5"):
        decrypt(der, *provider)


def test_letter_for_another_certificate(provider: KeyPair, other: KeyPair) -> None:
    der = encrypt(b"not yours", Recipient(other[1]))
    with pytest.raises(NotForThisRecipient):
        decrypt(der, *provider)


def _flip(der: bytes, offset: int) -> bytes:
    return der[:offset] + bytes((der[offset] ^ 0x01,)) + der[offset + 1 :]


def _fields(der: bytes) -> tuple[int, int, int]:
    """Offsets of the encrypted key, the IV and the ciphertext in a letter."""
    enveloped = asn1_cms.ContentInfo.load(der)["content"]
    encrypted_key = enveloped["recipient_infos"][0].chosen["encrypted_key"].native
    content = enveloped["encrypted_content_info"]
    iv = content["content_encryption_algorithm"]["parameters"].native
    ciphertext = content["encrypted_content"].native
    return der.index(encrypted_key), der.index(iv), len(der) - len(ciphertext)


def test_tampering_gives_one_error(provider: KeyPair) -> None:
    """Changes that CBC padding or OAEP are bound to notice; all read the same."""
    recipient = Recipient(provider[1])
    # 5 bytes: one block whose last byte is padding 0x0b, which the IV's last byte flips.
    short = encrypt(b"hello", recipient)
    key_at, iv_at, _ = _fields(short)
    # 32 bytes: a whole block of padding 0x10, which the previous block's last byte flips.
    full = encrypt(b"x" * 32, recipient)
    _, _, ciphertext_at = _fields(full)
    damaged = [
        _flip(short, key_at + 100),  # the encrypted key: OAEP's check fails
        _flip(short, iv_at + 15),  # the IV: the padding byte changes
        _flip(full, len(full) - 17),  # the ciphertext: the padding byte changes
        full[:-16],  # a block cut off the end
        short[:-3],  # cut inside the structure
        short + b"\0",  # trailing garbage
        b"\x30\x03\x02\x01\x00",  # not CMS at all
    ]
    assert ciphertext_at < len(full) - 17
    messages = set()
    for letter in damaged:
        with pytest.raises(InvalidMessage) as caught:
            decrypt(letter, *provider)
        messages.add(str(caught.value))
    assert messages == {"The letter could not be decrypted: it is damaged or was changed."}


def test_expired_and_not_yet_valid_certificates_are_refused() -> None:
    now = datetime.now(UTC)
    _, expired = make_test_recipient(
        "old", not_before=now - timedelta(days=800), not_after=now - timedelta(days=1)
    )
    with pytest.raises(CertificateRefused, match="expired"):
        Recipient(expired)
    _, future = make_test_recipient("future", not_before=now + timedelta(days=1))
    with pytest.raises(CertificateRefused, match="not valid yet"):
        Recipient(future)


def test_short_rsa_key_is_refused() -> None:
    _, weak = make_test_recipient("weak", key_size=1024)
    with pytest.raises(CertificateRefused, match="1024 bits"):
        Recipient(weak)


def test_test_recipient_is_valid_for_two_years(provider: KeyPair) -> None:
    certificate = provider[1]
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime == timedelta(days=730)
    assert certificate.public_key().key_size == 2048  # type: ignore[union-attr]
