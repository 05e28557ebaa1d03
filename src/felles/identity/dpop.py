"""DPoP (RFC 9449): tokens bound to a key the client holds, so a stolen token is useless.

A proof is a JWT the client signs for each request with the private key whose public
part travels in the proof's header. We check it, remember its `jti` (no replays), and
bind tokens to the key's thumbprint (`cnf.jkt`).
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import extract_compact
from sqlalchemy.ext.asyncio import AsyncSession

from felles.identity.client_auth import remember_jti
from felles.identity.errors import OAuthError

PROOF_TYPE = "dpop+jwt"
PROOF_ALGS = ("ES256", "ES384", "RS256", "PS256", "EdDSA")
MAX_AGE_SECONDS = 60
LEEWAY_SECONDS = 5


class InvalidProof(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("invalid_dpop_proof", description)


@dataclass(frozen=True, slots=True)
class Proof:
    jkt: str  # RFC 7638 thumbprint of the client's public key
    claims: dict[str, Any]


def access_token_hash(token: str) -> str:
    """`ath`: base64url SHA-256 of the access token the proof goes with."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _public_key(jwk: Any) -> RSAKey | ECKey | OKPKey:
    if not isinstance(jwk, dict) or "d" in jwk or jwk.get("kty") not in ("RSA", "EC", "OKP"):
        raise InvalidProof("The proof's jwk must be a public RSA, EC or OKP key")
    try:
        cls = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}[jwk["kty"]]
        return cls.import_key(jwk)  # type: ignore[attr-defined,no-any-return]
    except (JoseError, ValueError, KeyError) as exc:
        raise InvalidProof("The proof's jwk is not a valid key") from exc


async def verify_proof(
    session: AsyncSession,
    proof: str,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
) -> Proof:
    """Check a DPoP proof for this request (method and URL without query)."""
    if not isinstance(proof, str) or proof.count(".") != 2 or len(proof) > 8192:
        raise InvalidProof("The DPoP header is not a JWT")
    try:
        header = extract_compact(proof.encode()).headers()
    except (JoseError, ValueError) as exc:
        raise InvalidProof("The DPoP header is not a JWT") from exc
    if header.get("typ") != PROOF_TYPE:
        raise InvalidProof("The proof's typ must be dpop+jwt")
    if header.get("alg") not in PROOF_ALGS:
        raise InvalidProof("The proof must be signed with an asymmetric algorithm")
    key = _public_key(header.get("jwk"))
    try:
        token = jwt.decode(proof, key, algorithms=[header["alg"]])
    except (JoseError, ValueError) as exc:
        raise InvalidProof("The proof's signature does not verify") from exc
    claims = dict(token.claims)
    if claims.get("htm") != method:
        raise InvalidProof("The proof's htm does not match the request method")
    if claims.get("htu") != url:
        raise InvalidProof("The proof's htu does not match the request URL")
    issued = claims.get("iat")
    now = time.time()
    if not isinstance(issued, int | float) or not (
        now - MAX_AGE_SECONDS <= issued <= now + LEEWAY_SECONDS
    ):
        raise InvalidProof("The proof is too old or from the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
        raise InvalidProof("The proof needs a unique jti")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise InvalidProof("The proof's ath does not match the access token")
    jkt = key.thumbprint()
    if not await remember_jti(session, f"dpop:{jkt}", jti, issued + MAX_AGE_SECONDS):
        raise InvalidProof("This proof has been used before (replay)")
    return Proof(jkt=jkt, claims=claims)


async def check_binding(
    session: AsyncSession,
    claims: dict[str, Any],
    *,
    scheme: str,
    token: str,
    proof: str | None,
    method: str,
    url: str,
) -> None:
    """A DPoP-bound token must come with the scheme DPoP and a proof by the bound key;
    an unbound token must come as Bearer (RFC 9449 section 7)."""
    cnf = claims.get("cnf")
    bound = cnf.get("jkt") if isinstance(cnf, dict) else None
    if bound is None:
        if scheme != "bearer":
            raise InvalidProof("This access token is not DPoP-bound: send it as Bearer")
        return
    if scheme != "dpop" or not proof:
        raise InvalidProof("This access token is DPoP-bound: send it with a DPoP proof")
    checked = await verify_proof(session, proof, method=method, url=url, access_token=token)
    if checked.jkt != bound:
        raise InvalidProof("The DPoP proof is signed by another key than the token is bound to")
