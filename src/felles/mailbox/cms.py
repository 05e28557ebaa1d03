"""Letters encrypted as CMS EnvelopedData (RFC 5652) in the Sikker digital post profile.

The profile is Difi's "Sikker digital post", section Sikkerhet/Konfidensialitet
(github.com/difi/begrep-SikkerDigitalPost, forretningslag/Sikkerhet/index.textile):
ContentInfo id-envelopedData; EnvelopedData version 0, no originatorInfo, no
unprotectedAttrs; exactly one KeyTransRecipientInfo, version 0, rid
issuerAndSerialNumber; keyEncryptionAlgorithm id-RSAES-OAEP (RFC 3560) with
hashFunc sha1, maskGenFunc mgf1SHA1 and pSourceFunc pSpecifiedEmpty, i.e. the
*default* RSAES-OAEP-params; encryptedContentInfo id-data with aes256-CBC
(RFC 3565), a 16-byte IV as parameters and PKCS #5/#7 padding. So the profile's
OAEP hash is SHA-1 (still sound for OAEP, which needs no collision resistance); a
`Recipient` may choose SHA-256 with MGF1-SHA-256 instead for providers that want it.

AES-CBC carries no integrity of its own: the profile protects integrity with the
signed ASiC-E document package inside, and a fingerprint in the signed message.
`decrypt` therefore treats every decryption failure alike (one error, one message)
so it offers no padding oracle, but it cannot detect every change to the ciphertext.

`encrypt` is the hot path: what repeats for every letter to one provider (the
recipient identifier, the key encryption algorithm) is DER-encoded once in
`Recipient`, and a letter only costs a random key, RSA-OAEP of that key, AES of the
content and one concatenation. asn1crypto is used to parse and, in tests and the
benchmark, as the reference encoder (`encrypt_with_asn1crypto`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Literal

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

OaepHash = Literal["sha1", "sha256"]

MIN_RSA_BITS = 2048
PROFILE_OAEP_HASH: OaepHash = "sha1"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}
_AES_CBC_KEY_BYTES = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}
_INVALID = "The letter could not be decrypted: it is damaged or was changed."


class CmsError(Exception):
    """Base of the errors this module raises, all with a plain message."""


class CertificateRefused(CmsError):
    """The certificate cannot receive letters (wrong key, too short, not valid now)."""


class NotForThisRecipient(CmsError):
    """The letter has no recipient info for this certificate."""


class UnsupportedAlgorithm(CmsError):
    """The letter uses algorithms outside the profile (for example PKCS#1 v1.5)."""


class InvalidMessage(CmsError):
    """The letter is malformed or does not decrypt; deliberately one message for all."""

    def __init__(self) -> None:
        super().__init__(_INVALID)


def _header(tag: int, length: int) -> bytes:
    """A DER tag and length. The first three forms cover every header of a letter but
    its outermost few, without building the length's bytes."""
    if length < 0x80:
        return bytes((tag, length))
    if length < 0x100:
        return bytes((tag, 0x81, length))
    if length < 0x10000:
        return bytes((tag, 0x82, length >> 8, length & 0xFF))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(body))) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return _header(tag, len(body)) + body


def _oaep_params(oaep_hash: OaepHash) -> algos.RSAESOAEPParams:
    if oaep_hash == "sha1":
        # Every field at its DEFAULT, which DER omits: an empty SEQUENCE, as in the
        # profile and as `openssl cms -keyopt rsa_padding_mode:oaep` writes it.
        return algos.RSAESOAEPParams.load(b"\x30\x00")
    # Hash identifiers without NULL parameters, as OpenSSL 3 writes them (RFC 5754).
    return algos.RSAESOAEPParams(
        {
            "hash_algorithm": {"algorithm": oaep_hash},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": oaep_hash}},
        }
    )


def _key_encryption_algorithm(oaep_hash: OaepHash) -> cms.KeyEncryptionAlgorithm:
    return cms.KeyEncryptionAlgorithm(
        {"algorithm": "rsaes_oaep", "parameters": _oaep_params(oaep_hash)}
    )


def _oaep(hash_name: str, mgf_hash_name: str) -> asym_padding.OAEP:
    return asym_padding.OAEP(
        mgf=asym_padding.MGF1(_HASHES[mgf_hash_name]()),
        algorithm=_HASHES[hash_name](),
        label=None,
    )


def _issuer_and_serial(certificate: x509.Certificate) -> cms.IssuerAndSerialNumber:
    parsed = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    return cms.IssuerAndSerialNumber(
        {"issuer": parsed.issuer, "serial_number": parsed.serial_number}
    )


class Recipient:
    """A mailbox provider's certificate, checked once and pre-encoded for many letters."""

    def __init__(
        self,
        certificate: x509.Certificate,
        *,
        oaep_hash: OaepHash = PROFILE_OAEP_HASH,
        now: datetime | None = None,
    ) -> None:
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise CertificateRefused("The certificate's key is not an RSA key.")
        if key.key_size < MIN_RSA_BITS:
            raise CertificateRefused(
                f"The certificate's RSA key has {key.key_size} bits; at least "
                f"{MIN_RSA_BITS} are required."
            )
        moment = now or datetime.now(UTC)
        if moment < certificate.not_valid_before_utc:
            raise CertificateRefused(
                "The certificate is not valid yet (valid from "
                f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC)."
            )
        if moment > certificate.not_valid_after_utc:
            raise CertificateRefused(
                "The certificate has expired (valid until "
                f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)."
            )
        self.certificate = certificate
        self.public_key = key
        self.oaep_hash: OaepHash = oaep_hash
        self.padding = _oaep(oaep_hash, oaep_hash)
        self.issuer_and_serial = _issuer_and_serial(certificate)
        self.key_encryption_algorithm = _key_encryption_algorithm(oaep_hash)
        # KeyTransRecipientInfo = SEQUENCE { version 0, rid, keyEncAlg, OCTET STRING }:
        # everything up to the encrypted key's own length, once.
        self._ktri_fixed = (
            b"\x02\x01\x00" + self.issuer_and_serial.dump() + self.key_encryption_algorithm.dump()
        )
        self._encrypted_key_len = (key.key_size + 7) // 8


# The parts of every letter that never change, as DER.
_VERSION_0 = b"\x02\x01\x00"
_OID_ENVELOPED_DATA = bytes.fromhex("06092a864886f70d010703")
_OID_DATA = bytes.fromhex("06092a864886f70d010701")
_AES256_CBC_ID_PREFIX = bytes.fromhex("301d060960864801650304012a" + "0410")  # + 16-byte IV


def _encrypt_parts(content: bytes, recipient: Recipient) -> tuple[bytes, bytes, bytes]:
    """Random CEK and IV per letter; returns (encrypted key, IV, ciphertext)."""
    cek = os.urandom(32)
    iv = os.urandom(16)
    encrypted_key = recipient.public_key.encrypt(cek, recipient.padding)
    pad = 16 - len(content) % 16  # PKCS #7 (RFC 5652, 6.3): 1 to 16 bytes of their count
    encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(content + bytes((pad,)) * pad) + encryptor.finalize()
    return encrypted_key, iv, ciphertext


def encrypt(content: bytes, recipient: Recipient) -> bytes:
    """Encrypt one letter for one mailbox provider: DER ContentInfo(EnvelopedData)."""
    encrypted_key, iv, ciphertext = _encrypt_parts(content, recipient)
    # Lengths bottom-up, then one join: the ciphertext is copied once.
    ek = _header(0x04, len(encrypted_key)) + encrypted_key
    ktri_body_len = len(recipient._ktri_fixed) + len(ek)
    ktri_header = _header(0x30, ktri_body_len)
    set_body_len = len(ktri_header) + ktri_body_len
    set_header = _header(0x31, set_body_len)
    ct_header = _header(0x80, len(ciphertext))  # [0] IMPLICIT OCTET STRING
    eci_body_len = len(_OID_DATA) + len(_AES256_CBC_ID_PREFIX) + 16 + len(ct_header)
    eci_body_len += len(ciphertext)
    eci_header = _header(0x30, eci_body_len)
    env_body_len = len(_VERSION_0) + len(set_header) + set_body_len
    env_body_len += len(eci_header) + eci_body_len
    env_header = _header(0x30, env_body_len)
    explicit_header = _header(0xA0, len(env_header) + env_body_len)
    ci_body_len = len(_OID_ENVELOPED_DATA) + len(explicit_header) + len(env_header)
    ci_body_len += env_body_len
    return b"".join(
        (
            _header(0x30, ci_body_len),
            _OID_ENVELOPED_DATA,
            explicit_header,
            env_header,
            _VERSION_0,
            set_header,
            ktri_header,
            recipient._ktri_fixed,
            ek,
            eci_header,
            _OID_DATA,
            _AES256_CBC_ID_PREFIX,
            iv,
            ct_header,
            ciphertext,
        )
    )


def encrypt_with_asn1crypto(content: bytes, recipient: Recipient) -> bytes:
    """The same structure built by asn1crypto: the reference `encrypt` is checked against."""
    encrypted_key, iv, ciphertext = _encrypt_parts(content, recipient)
    enveloped = cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [
                cms.RecipientInfo(
                    name="ktri",
                    value=cms.KeyTransRecipientInfo(
                        {
                            "version": "v0",
                            "rid": cms.RecipientIdentifier(
                                name="issuer_and_serial_number",
                                value=recipient.issuer_and_serial,
                            ),
                            "key_encryption_algorithm": recipient.key_encryption_algorithm,
                            "encrypted_key": encrypted_key,
                        }
                    ),
                )
            ],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": "aes256_cbc", "parameters": iv},
                "encrypted_content": ciphertext,
            },
        }
    )
    info = cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped})
    der: bytes = info.dump()
    return der


def _oaep_from_params(params: algos.RSAESOAEPParams) -> asym_padding.OAEP:
    """Honour SHA-1 or SHA-256 OAEP parameters as written in the letter; refuse others."""
    hash_name = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    mgf_hash_name = mgf["parameters"]["algorithm"].native
    p_source = params["p_source_algorithm"]
    if (
        hash_name not in _HASHES
        or mgf["algorithm"].native != "mgf1"
        or mgf_hash_name not in _HASHES
        or p_source["algorithm"].native != "p_specified"
        or p_source["parameters"].native not in (None, b"")
    ):
        raise UnsupportedAlgorithm(
            "The letter's RSAES-OAEP parameters are not accepted: only SHA-1 or SHA-256 "
            "with MGF1 and an empty label."
        )
    return _oaep(hash_name, mgf_hash_name)


def decrypt(der: bytes, private_key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> bytes:
    """Open a letter addressed to `certificate`, with its private key."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "enveloped_data":
            raise InvalidMessage()
        enveloped = info["content"]
        recipient_infos = list(enveloped["recipient_infos"])
        ours = _issuer_and_serial(certificate)
        ktri = None
        for info_choice in recipient_infos:
            if info_choice.name != "ktri":
                continue
            rid = info_choice.chosen["rid"]
            if rid.name == "issuer_and_serial_number" and (
                rid.chosen["serial_number"].native == ours["serial_number"].native
                and rid.chosen["issuer"] == ours["issuer"]
            ):
                ktri = info_choice.chosen
                break
        if ktri is None:
            raise NotForThisRecipient(
                "The letter is not addressed to this certificate (no recipient with its "
                "issuer and serial number)."
            )
        key_algorithm = ktri["key_encryption_algorithm"]
        key_algorithm_name = key_algorithm["algorithm"].native
        if key_algorithm_name == "rsaes_pkcs1v15":
            raise UnsupportedAlgorithm(
                "The letter's key is encrypted with RSA PKCS#1 v1.5; the profile requires "
                "RSAES-OAEP."
            )
        if key_algorithm_name != "rsaes_oaep":
            raise UnsupportedAlgorithm(
                f"The letter's key encryption algorithm ({key_algorithm_name}) is not RSAES-OAEP."
            )
        oaep = _oaep_from_params(key_algorithm["parameters"])
        content_info = enveloped["encrypted_content_info"]
        content_algorithm = content_info["content_encryption_algorithm"]
        content_algorithm_name = content_algorithm["algorithm"].native
        if content_algorithm_name not in _AES_CBC_KEY_BYTES:
            raise UnsupportedAlgorithm(
                f"The letter's content encryption ({content_algorithm_name}) is not AES-CBC."
            )
        iv = content_algorithm["parameters"].native
        ciphertext = content_info["encrypted_content"].native
        encrypted_key = ktri["encrypted_key"].native
    except CmsError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise InvalidMessage() from error
    if not isinstance(iv, bytes) or len(iv) != 16 or not isinstance(ciphertext, bytes):
        raise InvalidMessage()
    try:
        cek = private_key.decrypt(encrypted_key, oaep)
        if len(cek) != _AES_CBC_KEY_BYTES[content_algorithm_name]:
            raise ValueError("wrong key length")
        decryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise InvalidMessage() from None


def make_test_recipient(
    common_name: str,
    *,
    key_size: int = 2048,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A fresh RSA key and a self-signed certificate for it, valid two years from now
    (for tests; never for production certificates from a real CA)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    return key, self_signed_certificate(key, common_name, not_before, not_after)


def self_signed_certificate(
    key: rsa.RSAPrivateKey,
    common_name: str,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> x509.Certificate:
    """An encryption certificate (key encipherment only) for `key`, signed by itself:
    the built-in mailbox provider's, and the demo's stand-ins for real providers'."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    end = not_after or start + timedelta(days=730)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
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
