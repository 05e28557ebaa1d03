"""Secrets of the identity part: the master key that encrypts private keys at rest,
and keyed hashes for values that must be looked up but never stored in the clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from felles.config import Settings
from felles.web.keys import load_or_create_secret

NONCE_BYTES = 12


def master_key(settings: Settings) -> bytes:
    """FELLES_MASTER_KEY (hex, shared by every host) or var/keys/master.key, made once."""
    configured = os.environ.get("FELLES_MASTER_KEY")
    if configured:
        key = bytes.fromhex(configured)
        if len(key) != 32:
            raise ValueError("FELLES_MASTER_KEY must be 64 hex digits (32 bytes)")
        return key
    return load_or_create_secret(settings.keys_dir / "master.key")


def encrypt(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """AES-256-GCM; `context` (e.g. the key id) is bound as associated data."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context)


def decrypt(key: bytes, blob: bytes, context: bytes) -> bytes:
    return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context)


def random_token(nbytes: int = 32) -> str:
    """An unguessable URL-safe token (codes, refresh tokens, session ids, secrets)."""
    return secrets.token_urlsafe(nbytes)


def token_hash(value: str) -> str:
    """SHA-256 of a high-entropy token, for storing and looking it up.

    Codes, refresh tokens and client secrets carry 256 bits of randomness, so a fast
    hash is safe for them; argon2 is for passwords people choose.
    """
    return hashlib.sha256(value.encode()).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pairwise_subject(salt: bytes, sector: str, pid: str) -> str:
    """The `sub` a sector sees for a person: stable for that sector, unlinkable across."""
    return b64url(hmac.new(salt, f"{sector}|{pid}".encode(), hashlib.sha256).digest())


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
