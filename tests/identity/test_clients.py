"""The client registry and API scopes against the real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
import random
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey
from sqlalchemy import text
from typer.testing import CliRunner

from felles import config
from felles.config import Settings
from felles.db import Database
from felles.identity import clients
from felles.identity.clients import (
    GRANT_CLIENT_CREDENTIALS,
    GRANT_CODE,
    GRANT_JWT_BEARER,
    GRANT_REFRESH,
    ClientError,
    ClientRecord,
    ClientUpdate,
    NewClient,
    UnknownClient,
    UnknownScope,
)
from felles.identity.clients_cli import clients_app, scopes_app
from felles.identity.crypto import token_hash
from felles.identity.models import Client
from felles.registry.numbers import synthetic_orgnr
from tests.conftest import felles_command, felles_env

rng = random.Random()
RSA_KEY = RSAKey.generate_key(2048)
EC_KEY = ECKey.generate_key("P-256")
PUBLIC_JWKS = {
    "keys": [
        {**RSA_KEY.as_dict(private=False), "kid": "rsa-1", "use": "sig"},
        {**EC_KEY.as_dict(private=False), "kid": "ec-1"},
    ]
}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # joserfc warns about short keys; this one is meant to be
    SHORT_RSA_KEY = RSAKey.generate_key(1024)
REDIRECT = "https://tjeneste.example.no/callback"


def orgnr() -> str:
    return synthetic_orgnr(rng)


def people(**extra: Any) -> NewClient:
    values: dict[str, Any] = {"name": "Skjema for byggesak", "redirect_uris": [REDIRECT]}
    values.update(extra)
    return NewClient.model_validate(values)


def machine(org: str | None = None, **extra: Any) -> NewClient:
    values: dict[str, Any] = {
        "name": "Fagsystem",
        "orgnr": org or orgnr(),
        "auth_method": "private_key_jwt",
        "jwks": PUBLIC_JWKS,
        "scopes": [],
    }
    values.update(extra)
    return NewClient.model_validate(values)


async def add(db: Database, new: NewClient) -> tuple[ClientRecord, str | None]:
    async with db.session() as s:
        return await clients.add_client(s, new)


async def refused(db: Database, new: NewClient) -> ClientError:
    with pytest.raises(ClientError) as caught:
        await add(db, new)
    return caught.value


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


# --- registering clients -------------------------------------------------------------------


async def test_a_people_client_gets_a_generated_id_and_a_secret_shown_once(db: Database) -> None:
    client, secret = await add(db, people())
    assert uuid.UUID(client.client_id)
    assert secret is not None and len(secret) >= 43  # 32 random bytes, base64url
    assert client.grant_types == [GRANT_CODE, GRANT_REFRESH]
    assert client.scopes == ["openid"]
    assert client.auth_method == "client_secret_basic"
    assert not client.is_machine and client.uses_secret
    assert client.created_at.utcoffset() == timedelta(0)
    assert "secret_hash" not in client.model_dump()
    assert secret not in client.model_dump_json()

    async with db.session() as s:
        stored = await s.get(Client, client.client_id)
        assert stored is not None
        assert stored.secret_hash == token_hash(secret)
        raw = (
            await s.execute(
                text("SELECT * FROM identity_client WHERE client_id = :id"),
                {"id": client.client_id},
            )
        ).one()
        assert secret not in " ".join(str(v) for v in raw)
    async with db.session() as s:  # a fresh session reads the row back from the database
        again = await clients.get_client(s, client.client_id)
    assert again == client
    assert again.created_at.tzinfo == UTC and again.updated_at.tzinfo == UTC


async def test_two_clients_never_share_an_id_or_secret(db: Database) -> None:
    (a, secret_a), (b, secret_b) = await add(db, people()), await add(db, people())
    assert a.client_id != b.client_id and secret_a != secret_b


async def test_the_caller_cannot_choose_the_client_id_or_sneak_in_a_secret() -> None:
    with pytest.raises(pydantic.ValidationError):
        NewClient.model_validate({"name": "x", "client_id": "my-own-id"})
    with pytest.raises(pydantic.ValidationError):
        NewClient.model_validate({"name": "x", "secret_hash": "abc"})


@pytest.mark.parametrize(
    "uri",
    [
        "https://*.example.no/callback",
        "https://tjeneste.example.no/*",
        "/callback",
        "tjeneste.example.no/callback",
        "//tjeneste.example.no/callback",
        "https:///callback",
        "https:/tjeneste.example.no/callback",
        "https://tjeneste.example.no/callback#state",
        "https://tjeneste.example.no/callback#",
        "http://evil.example/callback",
        "http://tjeneste.example.no/callback",
        "http://localhost.evil.example/callback",
        "http://127.0.0.1.nip.io/callback",
        "http://0x7f000001/callback",
        "javascript:alert(document.cookie)",
        "JavaScript://tjeneste.example.no/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://tjeneste.example.no/callback",
        "no.example.app:/callback",
        "https://tjeneste.example.no@evil.example/callback",
        "https://user:pass@tjeneste.example.no/callback",
        "https://evil.example\\@tjeneste.example.no/callback",
        "https://tjeneste.example.no/call back",
        "https://tjeneste.example.no/callback\n",
        "https://tjeneste.example.no/\x00callback",
        "https://bаnkid.example.no/callback",  # Cyrillic а
        "https://tjeneste.example.no:99999/callback",
        "https://tjeneste..example.no/callback",
        "https://tjeneste.example.no%2f.evil.example/callback",
        "https://[not-an-ip]/callback",
        "",
        "https://tjeneste.example.no/" + "a" * 500,
    ],
)
async def test_unsafe_redirect_uris_are_refused(db: Database, uri: str) -> None:
    error = await refused(db, people(redirect_uris=[REDIRECT, uri]))
    assert error.field == "redirect_uris"
    assert str(error)


@pytest.mark.parametrize(
    "uri",
    [
        "https://tjeneste.example.no/callback?from=login",
        "https://tjeneste.example.no:8443/callback",
        "http://127.0.0.1:8080/callback",
        "http://[::1]:8080/callback",
        "http://localhost:3000/callback",
        "https://[2001:db8::1]/callback",
        "https://xn--bnkid-gra.example.no/callback",
    ],
)
async def test_https_and_loopback_redirect_uris_are_accepted(db: Database, uri: str) -> None:
    client, _ = await add(db, people(redirect_uris=[uri, uri]))
    assert client.redirect_uris == [uri]  # stored exactly, once


@pytest.mark.parametrize(
    "field",
    ["post_logout_redirect_uris", "frontchannel_logout_uri", "backchannel_logout_uri"],
)
@pytest.mark.parametrize(
    "uri",
    [
        "http://evil.example/logout",
        "https://*.example.no/logout",
        "javascript:alert(1)",
        "logout",
        "https://tjeneste.example.no/logout#x",
    ],
)
async def test_logout_uris_follow_the_same_rules(db: Database, field: str, uri: str) -> None:
    value: Any = [uri] if field == "post_logout_redirect_uris" else uri
    error = await refused(db, people(**{field: value}))
    assert error.field == field


async def test_logout_uris_are_kept(db: Database) -> None:
    client, _ = await add(
        db,
        people(
            post_logout_redirect_uris=["https://tjeneste.example.no/bye"],
            frontchannel_logout_uri="https://tjeneste.example.no/frontchannel",
            backchannel_logout_uri="https://api.tjeneste.example.no/backchannel",
        ),
    )
    assert client.post_logout_redirect_uris == ["https://tjeneste.example.no/bye"]
    assert client.frontchannel_logout_uri == "https://tjeneste.example.no/frontchannel"
    assert client.backchannel_logout_uri == "https://api.tjeneste.example.no/backchannel"


async def test_front_channel_logout_must_share_an_origin_with_a_redirect_uri(
    db: Database,
) -> None:
    error = await refused(db, people(frontchannel_logout_uri="https://other.example.no/logout"))
    assert error.field == "frontchannel_logout_uri"
    error = await refused(
        db, people(frontchannel_logout_uri="https://tjeneste.example.no:444/logout")
    )
    assert error.field == "frontchannel_logout_uri"


async def test_unknown_auth_method(db: Database) -> None:
    error = await refused(db, people(auth_method="client_secret_jwt"))
    assert error.field == "auth_method"
    assert "client_secret_basic" in str(error)


async def test_a_public_client_has_no_secret(db: Database) -> None:
    client, secret = await add(db, people(auth_method="none"))
    assert secret is None
    async with db.session() as s:
        stored = await s.get(Client, client.client_id)
        assert stored is not None and stored.secret_hash is None
        assert await clients.verify_secret(s, client.client_id, "") is None
        with pytest.raises(ClientError):
            await clients.new_secret(s, client.client_id)


async def test_a_people_client_needs_a_redirect_uri_and_openid(db: Database) -> None:
    assert (await refused(db, people(redirect_uris=[]))).field == "redirect_uris"
    assert (await refused(db, people(scopes=["profile"]))).field == "scopes"


async def test_grant_type_rules(db: Database) -> None:
    assert (await refused(db, people(grant_types=["implicit"]))).field == "grant_types"
    assert (await refused(db, people(grant_types=["password"]))).field == "grant_types"
    assert (await refused(db, people(grant_types=[]))).field == "grant_types"
    assert (await refused(db, people(grant_types=[GRANT_REFRESH]))).field == "grant_types"
    mixed = await refused(db, people(orgnr=orgnr(), grant_types=[GRANT_CODE, GRANT_JWT_BEARER]))
    assert mixed.field == "grant_types"
    client, _ = await add(db, people(grant_types=[GRANT_CODE]))
    assert client.grant_types == [GRANT_CODE]


@pytest.mark.parametrize(
    "scope",
    ["Openid", "-scope", "a b", "x" * 101, "scope\n", "skatt:ø", "", "scope*", "a;b"],
)
async def test_malformed_scope_names(db: Database, scope: str) -> None:
    assert (await refused(db, people(scopes=["openid", scope]))).field == "scopes"


async def test_scope_names_with_prefixes_and_versions(db: Database) -> None:
    names = ["openid", "profile", "skatteetaten:inntekt/read-v1.2_x"]
    client, _ = await add(db, people(scopes=[*names, "openid"]))
    assert client.scopes == names


async def test_token_settings(db: Database) -> None:
    assert (await refused(db, people(id_token_alg="HS256"))).field == "id_token_alg"
    assert (await refused(db, people(id_token_alg="none"))).field == "id_token_alg"
    assert (await refused(db, people(access_token_seconds=0))).field == "access_token_seconds"
    assert (await refused(db, people(access_token_seconds=3601))).field == "access_token_seconds"
    assert (await refused(db, people(refresh_token_seconds=0))).field == "refresh_token_seconds"
    client, _ = await add(
        db, people(id_token_alg="ES256", access_token_seconds=3600, require_par=True)
    )
    assert (client.id_token_alg, client.access_token_seconds) == ("ES256", 3600)
    assert client.require_par and not client.require_dpop


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "Bygg\x00sak", "Bygg\nsak"])
async def test_client_names(db: Database, name: str) -> None:
    assert (await refused(db, people(name=name))).field == "name"


async def test_sector_identifier(db: Database) -> None:
    assert (await refused(db, people(sector_identifier="a b"))).field == "sector_identifier"
    client, _ = await add(db, people(sector_identifier="tjeneste.example.no"))
    assert client.sector_identifier == "tjeneste.example.no"


# --- keys (private_key_jwt) --------------------------------------------------------------


async def test_private_key_jwt_with_public_keys(db: Database) -> None:
    client, secret = await add(db, people(auth_method="private_key_jwt", jwks=PUBLIC_JWKS))
    assert secret is None
    assert client.jwks == PUBLIC_JWKS
    assert len(KeySet.import_key_set(client.jwks).keys) == 2  # type: ignore[arg-type]


async def test_private_key_jwt_needs_keys(db: Database) -> None:
    assert (await refused(db, people(auth_method="private_key_jwt"))).field == "jwks"


@pytest.mark.parametrize(
    "private_key",
    [RSA_KEY.as_dict(private=True), EC_KEY.as_dict(private=True)],
    ids=["rsa", "ec"],
)
async def test_a_private_key_in_the_jwks_is_refused(db: Database, private_key: Any) -> None:
    jwks = {"keys": [PUBLIC_JWKS["keys"][0], private_key]}
    error = await refused(db, people(auth_method="private_key_jwt", jwks=jwks))
    assert error.field == "jwks"
    assert "private key" in str(error)


@pytest.mark.parametrize(
    "jwks",
    [
        {},
        {"keys": "not a list"},
        {"keys": []},
        {"keys": ["x"]},
        {"keys": [{}]},
        {"keys": [{"kty": "nonsense"}]},
        {"keys": [{"kty": "RSA", "n": "!!!", "e": "AQAB"}]},
        {"keys": [{"kty": "RSA", "n": 5, "e": "AQAB"}]},
        {"keys": [{"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA"}]},
        {"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]},
        {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA"}]},
        {"keys": [PUBLIC_JWKS["keys"][0], {"kty": "nonsense"}]},
        {"keys": [OctKey.generate_key(256).as_dict()]},
        {"keys": [SHORT_RSA_KEY.as_dict(private=False)]},
        {"keys": [PUBLIC_JWKS["keys"][0]] * 21},
    ],
    ids=lambda _: "",
)
async def test_garbage_jwks_is_refused_with_a_reason(db: Database, jwks: Any) -> None:
    error = await refused(db, people(auth_method="private_key_jwt", jwks=jwks))
    assert error.field == "jwks"
    assert str(error).startswith(("The JWKS", "Key "))


# --- machine clients ---------------------------------------------------------------------


async def test_a_machine_client_defaults_to_the_jwt_bearer_grant(db: Database) -> None:
    org = orgnr()
    client, secret = await add(db, machine(org=f"{org[:3]} {org[3:6]} {org[6:]}"))
    assert secret is None
    assert client.grant_types == [GRANT_JWT_BEARER]
    assert client.is_machine and client.orgnr == org


async def test_machine_client_rules(db: Database) -> None:
    no_org = await refused(db, machine(orgnr=None, grant_types=[GRANT_JWT_BEARER]))
    assert no_org.field == "orgnr"
    assert (await refused(db, machine(orgnr="123456789"))).field == "orgnr"
    assert (await refused(db, machine(orgnr="abc"))).field == "orgnr"
    secret_method = await refused(db, machine(auth_method="client_secret_basic", jwks=None))
    assert secret_method.field == "auth_method"
    assert (await refused(db, machine(auth_method="none"))).field == "auth_method"
    redirect = await refused(db, machine(grant_types=[GRANT_JWT_BEARER], redirect_uris=[REDIRECT]))
    assert redirect.field == "redirect_uris"
    logout = await refused(db, machine(backchannel_logout_uri="https://x.example.no/logout"))
    assert logout.field == "backchannel_logout_uri"
    no_keys = await refused(db, machine(jwks=None))
    assert no_keys.field == "jwks"


async def test_a_client_credentials_client_may_use_a_secret(db: Database) -> None:
    client, secret = await add(
        db,
        machine(
            auth_method="client_secret_post", jwks=None, grant_types=[GRANT_CLIENT_CREDENTIALS]
        ),
    )
    assert client.is_machine and secret is not None
    async with db.session() as s:
        assert await clients.verify_secret(s, client.client_id, secret) == client


async def test_an_orgnr_with_redirect_uris_is_a_people_client(db: Database) -> None:
    client, _ = await add(db, people(orgnr=orgnr()))
    assert not client.is_machine
    assert client.grant_types == [GRANT_CODE, GRANT_REFRESH]


# --- secrets, lookups, life cycle --------------------------------------------------------


async def test_verify_secret(db: Database) -> None:
    client, secret = await add(db, people())
    assert secret is not None
    async with db.session() as s:
        assert await clients.verify_secret(s, client.client_id, secret) == client
        assert await clients.verify_secret(s, client.client_id, secret + "x") is None
        assert await clients.verify_secret(s, client.client_id, "") is None
        assert await clients.verify_secret(s, client.client_id, token_hash(secret)) is None
        assert await clients.verify_secret(s, str(uuid.uuid4()), secret) is None
        assert await clients.verify_secret(s, "", secret) is None
        assert await clients.verify_secret(s, "abc\x00def", secret) is None
        assert await clients.verify_secret(s, "x" * 1000, secret) is None

    async with db.session() as s:
        await clients.disable_client(s, client.client_id)
    async with db.session() as s:
        assert await clients.verify_secret(s, client.client_id, secret) is None
        await clients.enable_client(s, client.client_id)
    async with db.session() as s:
        assert await clients.verify_secret(s, client.client_id, secret) is not None


async def test_a_new_secret_replaces_the_old_one_at_once(db: Database) -> None:
    client, old = await add(db, people(auth_method="client_secret_post"))
    assert old is not None
    async with db.session() as s:
        new = await clients.new_secret(s, client.client_id)
    assert new != old
    async with db.session() as s:
        assert await clients.verify_secret(s, client.client_id, old) is None
        assert await clients.verify_secret(s, client.client_id, new) is not None
        stored = await s.get(Client, client.client_id)
        assert stored is not None and stored.secret_hash == token_hash(new)


async def test_unknown_and_disabled_clients(db: Database) -> None:
    client, _ = await add(db, people())
    async with db.session() as s:
        for bad in (str(uuid.uuid4()), "", "nul\x00byte", "x" * 65):
            with pytest.raises(UnknownClient):
                await clients.get_client(s, bad)
        with pytest.raises(UnknownClient):
            await clients.disable_client(s, str(uuid.uuid4()))
        with pytest.raises(UnknownClient):
            await clients.new_secret(s, str(uuid.uuid4()))
        with pytest.raises(UnknownClient):
            await clients.update_client(s, str(uuid.uuid4()), ClientUpdate(name="x"))
        disabled = await clients.disable_client(s, client.client_id)
        assert disabled.disabled
        assert disabled.updated_at >= client.updated_at
    async with db.session() as s:
        with pytest.raises(UnknownClient):
            await clients.get_client(s, client.client_id)
        assert (await clients.get_client(s, client.client_id, include_disabled=True)).disabled
        everyone = {c.client_id for c in await clients.list_clients(s)}
        active = {c.client_id for c in await clients.list_clients(s, include_disabled=False)}
    assert client.client_id in everyone and client.client_id not in active


async def test_update_replaces_lists_and_keeps_the_rest(db: Database) -> None:
    client, secret = await add(
        db, people(frontchannel_logout_uri="https://tjeneste.example.no/front")
    )
    change = ClientUpdate(
        redirect_uris=["https://tjeneste.example.no/ny", "http://127.0.0.1:9000/cb"],
        scopes=["openid", "profile"],
        frontchannel_logout_uri="",
        require_dpop=True,
    )
    async with db.session() as s:
        updated = await clients.update_client(s, client.client_id, change)
    assert updated.redirect_uris == ["https://tjeneste.example.no/ny", "http://127.0.0.1:9000/cb"]
    assert updated.scopes == ["openid", "profile"]
    assert updated.frontchannel_logout_uri is None
    assert updated.require_dpop
    assert (updated.name, updated.auth_method, updated.created_at) == (
        client.name,
        client.auth_method,
        client.created_at,
    )
    assert updated.updated_at >= client.updated_at
    assert updated.updated_at.tzinfo == UTC
    async with db.session() as s:
        assert await clients.get_client(s, client.client_id) == updated
        assert await clients.verify_secret(s, client.client_id, secret or "") is not None


async def test_a_refused_update_changes_nothing(db: Database) -> None:
    client, _ = await add(db, people())
    bad_changes = [
        ClientUpdate(redirect_uris=["http://evil.example/cb"]),
        ClientUpdate(redirect_uris=[]),
        ClientUpdate(name="Nytt navn", auth_method="private_key_jwt"),  # no keys
        ClientUpdate(grant_types=[GRANT_JWT_BEARER]),  # no orgnr, has redirect URIs
        ClientUpdate(access_token_seconds=99999),
    ]
    for change in bad_changes:
        with pytest.raises(ClientError):
            async with db.session() as s:
                await clients.update_client(s, client.client_id, change)
    async with db.session() as s:
        assert await clients.get_client(s, client.client_id) == client


async def test_moving_off_a_secret_forgets_it(db: Database) -> None:
    client, secret = await add(db, people())
    assert secret is not None
    async with db.session() as s:
        moved = await clients.update_client(
            s, client.client_id, ClientUpdate(auth_method="private_key_jwt", jwks=PUBLIC_JWKS)
        )
        assert moved.auth_method == "private_key_jwt" and not moved.uses_secret
    async with db.session() as s:
        assert await clients.verify_secret(s, client.client_id, secret) is None
        back = await clients.update_client(
            s, client.client_id, ClientUpdate(auth_method="client_secret_basic")
        )
        assert back.uses_secret
        # The old secret does not come back; a new one must be made.
        assert await clients.verify_secret(s, client.client_id, secret) is None
        fresh = await clients.new_secret(s, client.client_id)
        assert await clients.verify_secret(s, client.client_id, fresh) is not None


# --- API scopes ---------------------------------------------------------------------------


async def test_scope_registration_rules(db: Database) -> None:
    owner = orgnr()
    async with db.session() as s:
        for bad_name in ("Skatt:inntekt", "a b", "", "x" * 101, "openid", "scope\n"):
            with pytest.raises(ClientError) as caught:
                await clients.add_scope(s, bad_name, owner_orgnr=owner)
            assert caught.value.field == "name"
        with pytest.raises(ClientError) as caught:
            await clients.add_scope(s, unique("skatt:x"), owner_orgnr="987654321")
        assert caught.value.field == "owner_orgnr"
        with pytest.raises(ClientError):
            await clients.add_scope(s, unique("skatt:x"), owner_orgnr=owner, description="x" * 501)
        with pytest.raises(ClientError):
            await clients.add_scope(
                s, unique("skatt:x"), owner_orgnr=owner, for_people=False, for_machines=False
            )
        name = unique("skatt:inntekt")
        scope = await clients.add_scope(s, name, owner_orgnr=owner, description=" Inntekt ")
        assert scope == clients.ScopeRecord(
            name=name,
            owner_orgnr=owner,
            description="Inntekt",
            for_people=False,
            for_machines=True,
            public=False,
        )
    async with db.session() as s:
        with pytest.raises(ClientError) as caught:
            await clients.add_scope(s, name, owner_orgnr=owner)
        assert caught.value.field == "name"
        assert scope in await clients.list_scopes(s)


async def test_grants_are_idempotent_and_revocable(db: Database) -> None:
    name, owner, consumer, other = unique("nav:aa"), orgnr(), orgnr(), orgnr()
    async with db.session() as s:
        await clients.add_scope(s, name, owner_orgnr=owner)
        await clients.grant_scope(s, name, consumer)
        await clients.grant_scope(s, name, consumer)
        await clients.grant_scope(s, name, other)
    async with db.session() as s:
        await clients.grant_scope(s, name, consumer)  # again, in a new transaction
        assert await clients.grants(s, name) == sorted([consumer, other])
        await clients.revoke_scope(s, name, other)
        await clients.revoke_scope(s, name, other)  # nothing left to revoke: fine
        assert await clients.grants(s, name) == [consumer]
        with pytest.raises(ClientError) as caught:
            await clients.grant_scope(s, name, "12345")
        assert caught.value.field == "consumer_orgnr"
        for call in (clients.grant_scope, clients.revoke_scope):
            with pytest.raises(UnknownScope):
                await call(s, unique("finnes:ikke"), consumer)
        with pytest.raises(UnknownScope):
            await clients.grants(s, "Not A Scope\x00")


async def test_which_scopes_a_machine_client_may_get(db: Database) -> None:
    owner, consumer = orgnr(), orgnr()
    own, granted, ungranted, public, people_only, unlisted = (
        unique("own:api"),
        unique("granted:api"),
        unique("ungranted:api"),
        unique("public:api"),
        unique("people:api"),
        unique("unlisted:api"),
    )
    async with db.session() as s:
        await clients.add_scope(s, own, owner_orgnr=consumer)
        await clients.add_scope(s, granted, owner_orgnr=owner)
        await clients.add_scope(s, ungranted, owner_orgnr=owner)
        await clients.add_scope(s, public, owner_orgnr=owner, public=True)
        await clients.add_scope(
            s, people_only, owner_orgnr=consumer, for_people=True, for_machines=False
        )
        await clients.add_scope(s, unlisted, owner_orgnr=owner, public=True)
        await clients.grant_scope(s, granted, consumer)
        await clients.grant_scope(s, ungranted, orgnr())  # someone else's grant
    listed = [own, granted, ungranted, public, people_only, "never:registered"]
    client, _ = await add(db, machine(org=consumer, scopes=listed))
    everything = {*listed, unlisted, "openid", "bad\x00scope"}
    async with db.session() as s:
        allowed = await clients.machine_scopes_allowed(s, client, everything)
        assert allowed == {own, granted, public}
        assert await clients.machine_scopes_allowed(s, client, {granted}) == {granted}
        assert await clients.machine_scopes_allowed(s, client, set()) == set()
        await clients.revoke_scope(s, granted, consumer)
        assert await clients.machine_scopes_allowed(s, client, everything) == {own, public}

        disabled = await clients.disable_client(s, client.client_id)
        assert await clients.machine_scopes_allowed(s, disabled, everything) == set()

    person_client, _ = await add(db, people(orgnr=consumer, scopes=["openid", *listed]))
    async with db.session() as s:
        assert await clients.machine_scopes_allowed(s, person_client, everything) == set()


# --- the command line ---------------------------------------------------------------------


@pytest.fixture
def cli_env(settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI's settings point at the test database (get_settings is cached: reset it)."""
    for key, value in felles_env(settings).items():
        if key.startswith("FELLES_"):
            monkeypatch.setenv(key, value)
    config.get_settings.cache_clear()
    yield
    config.get_settings.cache_clear()


runner = CliRunner()


def cli(app: Any, *args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def assert_clear_error(result: Any, code: int, *needles: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    line = " ".join(result.stderr.split())
    assert line.startswith("Error:"), result.stderr
    for needle in needles:
        assert needle in line, result.stderr


def test_cli_add_show_update_disable(cli_env: None, tmp_path: Path) -> None:
    added = cli(
        clients_app,
        "add",
        "--name",
        "Søknad om barnehageplass",
        "--redirect-uri",
        REDIRECT,
        "--redirect-uri",
        "http://localhost:3000/cb",
        "--post-logout-uri",
        "https://tjeneste.example.no/bye",
        "--scope",
        "openid",
        "--scope",
        "profile",
        "--require-par",
        "--dpop",
        "--id-token-alg",
        "ES256",
    )
    assert added.exit_code == 0, added.stderr
    created = json.loads(added.stdout)
    client_id, secret = created["client_id"], created["client_secret"]
    assert created["name"] == "Søknad om barnehageplass"
    assert created["redirect_uris"] == [REDIRECT, "http://localhost:3000/cb"]
    assert created["scopes"] == ["openid", "profile"]
    assert created["require_par"] and created["require_dpop"]
    assert created["kind"] == "people"
    assert "shown only this once" in added.stderr
    assert "secret_hash" not in created

    shown = cli(clients_app, "show", client_id)
    assert shown.exit_code == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert "client_secret" not in record and secret not in shown.stdout
    assert record["id_token_alg"] == "ES256"

    listed = json.loads(cli(clients_app, "list", "--json").stdout)
    assert client_id in {c["client_id"] for c in listed}
    assert secret not in cli(clients_app, "list").stdout

    updated = cli(
        clients_app,
        "update",
        client_id,
        "--redirect-uri",
        "https://tjeneste.example.no/ny",
        "--no-dpop",
        "--name",
        "Barnehageplass",
    )
    assert updated.exit_code == 0, updated.stderr
    after = json.loads(updated.stdout)
    assert after["redirect_uris"] == ["https://tjeneste.example.no/ny"]
    assert after["require_dpop"] is False and after["require_par"] is True
    assert after["name"] == "Barnehageplass"
    assert "client_secret" not in after

    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(PUBLIC_JWKS["keys"][1]))  # a single JWK is a set of one
    moved = cli(
        clients_app,
        "update",
        client_id,
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(keys),
    )
    assert moved.exit_code == 0, moved.stderr
    assert json.loads(moved.stdout)["jwks"] == {"keys": [PUBLIC_JWKS["keys"][1]]}
    back = cli(clients_app, "update", client_id, "--auth-method", "client_secret_post")
    assert back.exit_code == 0, back.stderr
    assert json.loads(back.stdout)["client_secret"] not in (None, secret)

    rotated = cli(clients_app, "new-secret", client_id)
    assert rotated.exit_code == 0, rotated.stderr
    assert json.loads(rotated.stdout)["client_id"] == client_id

    disabled = cli(clients_app, "disable", client_id)
    assert disabled.exit_code == 0 and "disabled" in disabled.stdout
    assert json.loads(cli(clients_app, "show", client_id).stdout)["disabled"] is True
    assert "disabled" in cli(clients_app, "list").stdout
    enabled = cli(clients_app, "enable", client_id)
    assert enabled.exit_code == 0 and "enabled" in enabled.stdout


def test_cli_machine_client_from_a_jwks_file(cli_env: None, tmp_path: Path) -> None:
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(PUBLIC_JWKS))
    org = orgnr()
    result = cli(
        clients_app,
        "add",
        "--name",
        "Fagsystem",
        "--org",
        org,
        "--jwks-file",
        str(keys),
        "--scope",
        "nav:aa",
    )
    assert result.exit_code == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["kind"] == "machine"
    assert created["auth_method"] == "private_key_jwt"
    assert created["grant_types"] == [GRANT_JWT_BEARER]
    assert "client_secret" not in created
    assert cli(clients_app, "new-secret", created["client_id"]).exit_code == 2


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--redirect-uri", "http://evil.example/cb"], ["must use https", "--redirect-uri"]),
        (["--redirect-uri", "https://*.example.no/cb"], ["wildcard"]),
        (["--redirect-uri", "javascript:alert(1)"], ["absolute https"]),
        ([], ["at least one redirect URI"]),
        (["--redirect-uri", REDIRECT, "--auth-method", "magic"], ["Unknown authentication"]),
        (["--org", "123456789"], ["Invalid organisation number", "--org"]),
        (["--org", "974760673", "--auth-method", "client_secret_basic"], ["private_key_jwt"]),
        (["--redirect-uri", REDIRECT, "--grant-type", "implicit"], ["Unknown grant type"]),
        (["--redirect-uri", REDIRECT, "--id-token-alg", "HS256"], ["RS256"]),
        (["--redirect-uri", REDIRECT, "--scope", "BAD SCOPE"], ["not a valid scope"]),
    ],
)
def test_cli_bad_input_is_one_clear_line(
    cli_env: None, args: list[str], needles: list[str]
) -> None:
    result = runner.invoke(clients_app, ["add", "--name", "Tjeneste", *args])
    assert_clear_error(result, 2, *needles)


def test_cli_bad_jwks_files(cli_env: None, tmp_path: Path) -> None:
    org = orgnr()
    base = ["add", "--name", "Fagsystem", "--org", org, "--jwks-file"]
    missing = runner.invoke(clients_app, [*base, str(tmp_path / "nope.json")])
    assert_clear_error(missing, 2, "Cannot read the JWKS file")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("this is { not json")
    assert_clear_error(runner.invoke(clients_app, [*base, str(garbage)]), 2, "is not JSON")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert_clear_error(runner.invoke(clients_app, [*base, str(binary)]), 2, "Cannot read")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    assert_clear_error(runner.invoke(clients_app, [*base, str(listed)]), 2, "JWK set")
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [RSA_KEY.as_dict(private=True)]}))
    assert_clear_error(runner.invoke(clients_app, [*base, str(private)]), 2, "private key")


def test_cli_unknown_client_and_empty_update(cli_env: None) -> None:
    unknown = str(uuid.uuid4())
    for command in ("show", "disable", "enable", "new-secret"):
        assert_clear_error(runner.invoke(clients_app, [command, unknown]), 1, "No client")
    assert_clear_error(
        runner.invoke(clients_app, ["update", unknown, "--name", "x"]), 1, "No client"
    )
    assert_clear_error(runner.invoke(clients_app, ["update", unknown]), 2, "Nothing to change")


def test_cli_scopes(cli_env: None) -> None:
    owner, consumer = orgnr(), orgnr()
    name = unique("skatteetaten:inntekt")
    added = cli(scopes_app, "add", name, "--owner", owner, "--description", "Inntekt", "--public")
    assert added.exit_code == 0, added.stderr
    assert json.loads(added.stdout)["public"] is True
    assert_clear_error(runner.invoke(scopes_app, ["add", name, "--owner", owner]), 2, "exists")
    assert_clear_error(
        runner.invoke(scopes_app, ["add", "Bad Name", "--owner", owner]), 2, "not a valid scope"
    )
    assert_clear_error(
        runner.invoke(scopes_app, ["add", unique("x:y"), "--owner", "1"]), 2, "--owner"
    )

    granted = cli(scopes_app, "grant", name, consumer)
    assert granted.exit_code == 0 and consumer in granted.stdout
    assert cli(scopes_app, "grant", name, consumer).exit_code == 0
    rows = json.loads(cli(scopes_app, "list", "--json").stdout)
    (row,) = [r for r in rows if r["name"] == name]
    assert row["grants"] == [consumer] and row["owner_orgnr"] == owner
    table = cli(scopes_app, "list").stdout
    assert "Granted to" in table and name[:10] in table

    revoked = cli(scopes_app, "revoke", name, consumer)
    assert revoked.exit_code == 0 and "Revoked" in revoked.stdout
    again = cli(scopes_app, "revoke", name, consumer)
    assert again.exit_code == 0 and "nothing to revoke" in again.stdout
    assert_clear_error(
        runner.invoke(scopes_app, ["grant", unique("no:such"), consumer]), 1, "No scope"
    )
    assert_clear_error(runner.invoke(scopes_app, ["grant", name, "12"]), 2, "organisation number")


def test_the_real_felles_command(settings: Settings, db: Database) -> None:
    def felles(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            felles_command(*args),
            env=felles_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    added = felles("clients", "add", "--name", "Ekte", "--redirect-uri", REDIRECT)
    assert added.returncode == 0, added.stderr
    client_id = json.loads(added.stdout)["client_id"]
    assert json.loads(felles("clients", "show", client_id).stdout)["name"] == "Ekte"
    bad = felles("clients", "add", "--name", "Ekte", "--redirect-uri", "http://evil.example/")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("Error:")
    assert felles("scopes", "list", "--json").returncode == 0
