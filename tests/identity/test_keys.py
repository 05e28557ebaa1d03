"""Signing keys: made once, encrypted at rest, published, rotated, pruned, cached.

Runs on its own scratch database (migrated like production), because these tests need
an empty key table and must not pull keys from under other tests' KeyStores.
Tokens are checked with `cryptography` straight from the public JWKS, the way a
relying party outside Felles would, so joserfc is never the judge of its own work.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import delete, event, select, update

from felles.db import Database
from felles.identity import crypto
from felles.identity import keys as keys_module
from felles.identity.keys import SUPPORTED_ALGS, KeyStore, WrongMasterKey, as_utc, utcnow
from felles.identity.keys import _generate as generate
from felles.identity.models import SigningKey
from tests.conftest import felles_command, scratch_database

HOUR = timedelta(hours=1)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scratch_database(tmp_path_factory.mktemp("keys"), "keys") as url:
        yield url


@pytest.fixture(scope="module")
async def migrated(keys_url: str) -> AsyncIterator[Database]:
    database = Database(keys_url)
    await database.upgrade()
    yield database
    await database.dispose()


@pytest.fixture
async def kdb(migrated: Database) -> Database:
    """The scratch database with an empty key table."""
    async with migrated.session() as session:
        await session.execute(delete(SigningKey))
    return migrated


@pytest.fixture
def master() -> bytes:
    return secrets.token_bytes(32)


async def rows(db: Database) -> list[SigningKey]:
    async with db.session() as session:
        return list(
            (await session.scalars(select(SigningKey).order_by(SigningKey.created_at))).all()
        )


def sign(key: RSAKey | ECKey, **claims: Any) -> str:
    alg = str(key.alg)
    now = int(time.time())
    body = {"iss": "http://testserver", "sub": "abc", "iat": now, "exp": now + 120, **claims}
    return jwt.encode({"alg": alg, "kid": key.kid}, body, key, algorithms=[alg])


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64int(part: str) -> int:
    return int.from_bytes(b64decode(part), "big")


def verify_outside(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Verify a JWS the way a relying party does, with `cryptography` and the JWKS only."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(b64decode(header_b64))
    matches = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    if not matches:
        raise LookupError(f"kid {header['kid']} is not in the JWKS")
    jwk = matches[0]
    assert jwk["alg"] == header["alg"] and jwk["use"] == "sig"
    signed = f"{header_b64}.{payload_b64}".encode()
    signature = b64decode(signature_b64)
    if header["alg"] == "ES256":
        assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and len(signature) == 64
        ec_key = ec.EllipticCurvePublicNumbers(
            b64int(jwk["x"]), b64int(jwk["y"]), ec.SECP256R1()
        ).public_key()
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        ec_key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    elif header["alg"] == "RS256":
        assert jwk["kty"] == "RSA"
        rsa_key = rsa.RSAPublicNumbers(b64int(jwk["e"]), b64int(jwk["n"])).public_key()
        assert rsa_key.key_size >= 2048
        rsa_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise AssertionError(f"unexpected alg {header['alg']}")
    claims: dict[str, Any] = json.loads(b64decode(payload_b64))
    return claims


def header_of(token: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(b64decode(token.split(".")[0]))
    return value


# -- making keys ------------------------------------------------------------------------


async def test_ensure_keys_makes_one_key_per_alg_and_is_idempotent(
    kdb: Database, master: bytes
) -> None:
    store = KeyStore(kdb, master)
    await store.ensure_keys()
    await store.ensure_keys()
    await KeyStore(kdb, master).ensure_keys()

    stored = await rows(kdb)
    assert sorted(r.alg for r in stored) == sorted(SUPPORTED_ALGS)
    for row in stored:
        assert row.retired_at is None and row.publish_until is None
        assert as_utc(row.created_at).utcoffset() == timedelta(0)
        cls = RSAKey if row.alg == "RS256" else ECKey
        public = cls.import_key(row.public_jwk)
        assert not public.is_private
        assert row.kid == public.thumbprint()  # RFC 7638
        assert row.public_jwk["kid"] == row.kid
        assert row.public_jwk["alg"] == row.alg and row.public_jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(row.public_jwk)
        key = await store.signing_key(row.alg)
        assert key.kid == row.kid and key.is_private and key.alg == row.alg


async def test_concurrent_start_up_makes_each_key_once(
    kdb: Database, master: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several processes starting together (own engines, own connections) agree."""
    others = [Database(kdb.url) for _ in range(3)]
    # Make the race certain: every store has looked (and found nothing) before any
    # of them has a key ready to insert.
    barrier = threading.Barrier(5, timeout=30)

    def generate_together(alg: str) -> RSAKey | ECKey:
        barrier.wait()
        return generate(alg)

    monkeypatch.setattr(keys_module, "_generate", generate_together)
    try:
        stores = [KeyStore(kdb, master), KeyStore(kdb, master)]
        stores += [KeyStore(db, master) for db in others]
        await asyncio.gather(*(s.ensure_keys() for s in stores))
        stored = await rows(kdb)
        assert sorted(r.alg for r in stored) == sorted(SUPPORTED_ALGS)
        for alg in SUPPORTED_ALGS:
            kids = {(await s.signing_key(alg)).kid for s in stores}
            assert len(kids) == 1
    finally:
        for db in others:
            await db.dispose()


async def test_private_keys_are_encrypted_at_rest(kdb: Database, master: bytes) -> None:
    store = KeyStore(kdb, master)
    await store.ensure_keys()
    for row in await rows(kdb):
        key = await store.signing_key(row.alg)
        pem = key.as_pem(private=True)
        der_body = b"".join(pem.splitlines()[1:-1])
        assert pem not in row.private_key
        assert der_body[:40] not in row.private_key
        assert b"PRIVATE KEY" not in row.private_key
        assert crypto.decrypt(master, row.private_key, context=row.kid.encode()) == pem
        with pytest.raises(InvalidTag):
            crypto.decrypt(secrets.token_bytes(32), row.private_key, context=row.kid.encode())
        with pytest.raises(InvalidTag):  # the ciphertext is bound to its kid
            crypto.decrypt(master, row.private_key, context=b"another-kid")

    wrong = KeyStore(kdb, secrets.token_bytes(32))
    with pytest.raises(WrongMasterKey, match="master key"):
        await wrong.signing_key("ES256")


# -- signing and publishing -------------------------------------------------------------


@pytest.mark.parametrize("alg", SUPPORTED_ALGS)
async def test_tokens_verify_from_the_published_jwks(
    kdb: Database, master: bytes, alg: str
) -> None:
    store = KeyStore(kdb, master)
    await store.ensure_keys()
    key = await store.signing_key(alg)
    token = sign(key, nonce="n-0S6_WzA2Mj")

    jwks = await store.jwks()
    assert {k["kid"] for k in jwks["keys"]} == {r.kid for r in await rows(kdb)}
    assert json.loads(json.dumps(jwks)) == jwks
    assert verify_outside(token, jwks)["nonce"] == "n-0S6_WzA2Mj"
    assert header_of(token)["kid"] == key.kid

    # Our own check (joserfc) uses the same, public, keys.
    keyset = await store.verification_keys()
    assert all(not k.is_private for k in keyset.keys)
    assert jwt.decode(token, keyset, algorithms=[alg]).claims["sub"] == "abc"

    # A tampered token fails outside too.
    head, _payload, sig = token.split(".")
    forged = base64.urlsafe_b64encode(b'{"sub":"mallory"}').rstrip(b"=").decode()
    with pytest.raises(InvalidSignature):
        verify_outside(f"{head}.{forged}.{sig}", jwks)


async def test_unsupported_alg_is_refused(kdb: Database, master: bytes) -> None:
    store = KeyStore(kdb, master)
    await store.ensure_keys()
    before = {r.kid for r in await rows(kdb)}
    for alg in ("HS256", "none", "rs256", "PS256", ""):
        with pytest.raises(ValueError, match="Unsupported"):
            await store.signing_key(alg)
        with pytest.raises(ValueError, match="Unsupported"):
            await store.rotate(alg=alg, token_lifetime=HOUR)
    assert {r.kid for r in await rows(kdb)} == before


async def test_no_key_yet_says_to_call_ensure_keys(kdb: Database, master: bytes) -> None:
    store = KeyStore(kdb, master)
    with pytest.raises(LookupError, match="ensure_keys"):
        await store.signing_key("RS256")
    assert await store.jwks() == {"keys": []}
    assert not await store.verification_keys()


# -- rotation ---------------------------------------------------------------------------


async def test_rotation_signs_with_the_new_key_and_keeps_old_tokens_valid(
    kdb: Database, master: bytes
) -> None:
    store = KeyStore(kdb, master, cache_seconds=30)
    await store.ensure_keys()
    old = {alg: await store.signing_key(alg) for alg in SUPPORTED_ALGS}
    old_tokens = {alg: sign(key) for alg, key in old.items()}

    started = utcnow()
    new_kids = await store.rotate(token_lifetime=HOUR)
    assert len(new_kids) == 2 and not {k.kid for k in old.values()} & set(new_kids)

    # This store sees its own rotation at once.
    new = {alg: await store.signing_key(alg) for alg in SUPPORTED_ALGS}
    assert {k.kid for k in new.values()} == set(new_kids)
    new_tokens = {alg: sign(key) for alg, key in new.items()}

    jwks = await store.jwks()
    assert len(jwks["keys"]) == 4
    for alg in SUPPORTED_ALGS:
        assert header_of(new_tokens[alg])["kid"] == new[alg].kid
        verify_outside(new_tokens[alg], jwks)
        verify_outside(old_tokens[alg], jwks)
        jwt.decode(old_tokens[alg], await store.verification_keys(), algorithms=[alg])

    by_kid = {r.kid: r for r in await rows(kdb)}
    for key in old.values():
        row = by_kid[str(key.kid)]
        assert row.retired_at is not None and row.publish_until is not None
        retired_at, until = as_utc(row.retired_at), as_utc(row.publish_until)
        assert started <= retired_at <= utcnow()
        # the token lifetime, plus the time other processes may still sign with it
        assert until == retired_at + HOUR + timedelta(seconds=store.cache_seconds)
    for kid in new_kids:
        assert by_kid[kid].retired_at is None

    # Nothing to prune while old tokens may still be valid.
    assert await store.prune() == 0
    assert len((await store.jwks())["keys"]) == 4

    # Time passes: the old keys' publication ends; prune removes them.
    async with kdb.session() as session:
        await session.execute(
            update(SigningKey)
            .where(SigningKey.kid.in_([str(k.kid) for k in old.values()]))
            .values(publish_until=utcnow() - timedelta(seconds=1))
        )
    assert await store.prune() == 2
    jwks = await store.jwks()
    assert {k["kid"] for k in jwks["keys"]} == set(new_kids)
    for alg in SUPPORTED_ALGS:
        verify_outside(new_tokens[alg], jwks)
        with pytest.raises(LookupError):
            verify_outside(old_tokens[alg], jwks)
    assert {r.kid for r in await rows(kdb)} == set(new_kids)


async def test_rotating_one_alg_leaves_the_other_alone(kdb: Database, master: bytes) -> None:
    store = KeyStore(kdb, master)
    await store.ensure_keys()
    rs_before = (await store.signing_key("RS256")).kid
    es_before = (await store.signing_key("ES256")).kid
    (new_kid,) = await store.rotate(alg="ES256", token_lifetime=HOUR)
    assert (await store.signing_key("ES256")).kid == new_kid != es_before
    assert (await store.signing_key("RS256")).kid == rs_before
    states = {r.kid: r.retired_at is None for r in await rows(kdb)}
    assert states == {rs_before: True, es_before: False, new_kid: True}


async def test_rotation_on_an_empty_database_just_makes_keys(kdb: Database, master: bytes) -> None:
    store = KeyStore(kdb, master)
    kids = await store.rotate(token_lifetime=HOUR)
    assert {(await store.signing_key(a)).kid for a in SUPPORTED_ALGS} == set(kids)


async def test_a_retired_key_leaves_the_jwks_when_its_publication_ends(
    kdb: Database, master: bytes
) -> None:
    """Even before prune, and even when that is sooner than the cache would expire."""
    store = KeyStore(kdb, master, cache_seconds=1.0)
    await store.ensure_keys()
    old = (await store.signing_key("ES256")).kid
    await store.rotate(alg="ES256", token_lifetime=timedelta(0))  # published for 1 s more
    assert old in {k["kid"] for k in (await store.jwks())["keys"]}
    await asyncio.sleep(1.2)
    assert old not in {k["kid"] for k in (await store.jwks())["keys"]}
    statuses = {r.kid: r.publish_until for r in await rows(kdb)}
    assert old in statuses  # still stored until prune
    assert await store.prune() == 1


async def test_another_process_sees_a_rotation_when_its_cache_expires(
    kdb: Database, master: bytes
) -> None:
    other_db = Database(kdb.url)  # another process: its own engine and cache
    try:
        here = KeyStore(kdb, master, cache_seconds=0.05)
        there = KeyStore(other_db, master, cache_seconds=0.05)
        slow = KeyStore(other_db, master, cache_seconds=3600)
        await here.ensure_keys()
        before = (await there.signing_key("ES256")).kid
        assert (await slow.signing_key("ES256")).kid == before

        (new_kid,) = await here.rotate(alg="ES256", token_lifetime=HOUR)
        assert (await here.signing_key("ES256")).kid == new_kid  # at once, here
        await asyncio.sleep(0.1)
        assert (await there.signing_key("ES256")).kid == new_kid
        assert new_kid in {k["kid"] for k in (await there.jwks())["keys"]}
        token = sign(await there.signing_key("ES256"))
        verify_outside(token, await here.jwks())

        # A long cache keeps serving what it read: no database round trip at all ...
        assert (await slow.signing_key("ES256")).kid == before
        # ... until it is told to forget.
        slow.invalidate()
        assert (await slow.signing_key("ES256")).kid == new_kid
    finally:
        await other_db.dispose()


async def test_a_read_that_raced_a_rotation_here_is_not_cached(
    kdb: Database, master: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh that read the keys just before this store rotated must not stick."""
    store = KeyStore(kdb, master, cache_seconds=3600)
    await store.ensure_keys()
    old = (await store.signing_key("ES256")).kid
    store.invalidate()
    read_done, release = asyncio.Event(), asyncio.Event()
    load = store._load

    async def slow_load() -> Any:
        snapshot = await load()
        read_done.set()
        await release.wait()
        return snapshot

    monkeypatch.setattr(store, "_load", slow_load)
    pending = asyncio.create_task(store.signing_key("ES256"))
    await read_done.wait()
    (new,) = await store.rotate(alg="ES256", token_lifetime=HOUR)
    release.set()
    assert (await pending).kid == old  # it asked before the rotation finished
    assert (await store.signing_key("ES256")).kid == new


async def test_the_cached_hot_path_does_not_touch_the_database(
    kdb: Database, master: bytes
) -> None:
    store = KeyStore(kdb, master, cache_seconds=60)
    await store.ensure_keys()
    await store.signing_key("RS256")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(kdb.engine.sync_engine, "before_cursor_execute", count)
    try:
        for _ in range(1000):
            await store.signing_key("RS256")
            await store.signing_key("ES256")
            await store.jwks()
            await store.verification_keys()
    finally:
        event.remove(kdb.engine.sync_engine, "before_cursor_execute", count)
    assert statements == []


async def test_many_requests_on_a_cold_cache_read_the_database_once(
    kdb: Database, master: bytes
) -> None:
    await KeyStore(kdb, master).ensure_keys()
    store = KeyStore(kdb, master, cache_seconds=60)
    selects: list[str] = []

    def count(*args: Any) -> None:
        if "identity_signing_key" in str(args[2]):
            selects.append(str(args[2]))

    event.listen(kdb.engine.sync_engine, "before_cursor_execute", count)
    try:
        keys = await asyncio.gather(*(store.signing_key("ES256") for _ in range(50)))
    finally:
        event.remove(kdb.engine.sync_engine, "before_cursor_execute", count)
    assert len({k.kid for k in keys}) == 1
    assert len(selects) == 1


# -- the command line ---------------------------------------------------------------------


def identity_cli(
    url: str, data_dir: Path, master: bytes, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FELLES_")}
    env.update(
        FELLES_ENV="test",
        FELLES_DATA_DIR=str(data_dir),
        FELLES_DATABASE_URL=url,
        FELLES_MASTER_KEY=master.hex(),
    )
    return subprocess.run(
        felles_command("identity", *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_rotates_and_lists_keys(kdb: Database, master: bytes, tmp_path: Path) -> None:
    store = KeyStore(kdb, master)
    await store.ensure_keys()
    old_es = (await store.signing_key("ES256")).kid
    old_rs = (await store.signing_key("RS256")).kid

    done = await asyncio.to_thread(
        identity_cli,
        kdb.url,
        tmp_path,
        master,
        "rotate-keys",
        "--alg",
        "ES256",
        "--token-lifetime-seconds",
        "600",
    )
    assert done.returncode == 0, done.stderr
    assert f"replaces {old_es}" in done.stdout
    assert "published until" in done.stdout

    listed = await asyncio.to_thread(identity_cli, kdb.url, tmp_path, master, "keys", "--json")
    assert listed.returncode == 0, listed.stderr
    keys = {k["kid"]: k for k in json.loads(listed.stdout)}
    assert len(keys) == 3
    assert keys[old_rs]["status"] == "active"
    assert keys[old_es]["status"] == "retired"
    assert keys[old_es]["retired_at"] and keys[old_es]["publish_until"]
    (new_es,) = (k for k, v in keys.items() if v["alg"] == "ES256" and v["status"] == "active")
    assert f"New ES256 key: {new_es}" in done.stdout

    # The key the CLI made is usable by the server (same master key) once its cache expires.
    store.invalidate()
    token = sign(await store.signing_key("ES256"))
    assert header_of(token)["kid"] == new_es
    verify_outside(token, await store.jwks())

    table = await asyncio.to_thread(identity_cli, kdb.url, tmp_path, master, "keys")
    assert table.returncode == 0, table.stderr
    assert "retired" in table.stdout and "active" in table.stdout


async def test_cli_refuses_bad_input_with_one_clear_line(
    kdb: Database, master: bytes, tmp_path: Path
) -> None:
    bad = await asyncio.to_thread(
        identity_cli, kdb.url, tmp_path, master, "rotate-keys", "--alg", "HS256"
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert await rows(kdb) == []

    # Another master key than the servers' would make keys no server can use.
    await KeyStore(kdb, master).ensure_keys()
    before = {(r.kid, r.retired_at) for r in await rows(kdb)}
    other_master = secrets.token_bytes(32)
    wrong = await asyncio.to_thread(identity_cli, kdb.url, tmp_path, other_master, "rotate-keys")
    assert wrong.returncode == 1
    assert "Traceback" not in wrong.stderr
    assert "FELLES_MASTER_KEY" in " ".join(wrong.stderr.split())
    assert {(r.kid, r.retired_at) for r in await rows(kdb)} == before

    empty = f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}"
    unmigrated = await asyncio.to_thread(identity_cli, empty, tmp_path, master, "keys")
    assert unmigrated.returncode == 1
    assert "Traceback" not in unmigrated.stderr
    assert "felles db upgrade" in " ".join(unmigrated.stderr.split())
