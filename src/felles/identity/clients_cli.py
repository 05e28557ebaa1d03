"""`felles clients ...` and `felles scopes ...`: register clients and API scopes.

Operators register the services that may use the login service. Output meant for
scripts is JSON on stdout; a client secret appears in it exactly once, when it is made.
Bad input is one line on stderr with exit code 2; an unknown client or scope, code 1.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError, ProgrammingError

from felles.cliutil import fail, run, settings, with_database
from felles.db import Database
from felles.identity import clients
from felles.identity.clients import (
    AUTH_METHODS,
    ClientError,
    ClientRecord,
    ClientUpdate,
    NewClient,
    UnknownClient,
    UnknownScope,
)

T = TypeVar("T")

clients_app = typer.Typer(
    rich_markup_mode="markdown",
    help="Clients of the login service: public services' web apps and agencies' servers.",
    no_args_is_help=True,
)
scopes_app = typer.Typer(
    rich_markup_mode="markdown",
    help="API scopes agencies expose, and which organisations may use them.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

# The options of `add` and `update`, each named once.
Name = Annotated[str | None, typer.Option("--name", help="The service's name, shown to people.")]
RedirectUris = Annotated[
    list[str] | None,
    typer.Option(
        "--redirect-uri",
        help="Where people come back after logging in (https, or http on 127.0.0.1, "
        "[::1] or localhost). Repeat for several; in update it replaces the list.",
    ),
]
PostLogoutUris = Annotated[
    list[str] | None,
    typer.Option("--post-logout-uri", help="Where people may go after logging out. Repeat."),
]
AuthMethod = Annotated[
    str | None,
    typer.Option(
        "--auth-method",
        help=f"How the client proves who it is: {', '.join(AUTH_METHODS)}. "
        "In add: private_key_jwt when --jwks-file is given, else client_secret_basic.",
    ),
]
JwksFile = Annotated[
    Path | None,
    typer.Option(
        "--jwks-file", help="A JSON file with the client's public keys (a JWK set or one JWK)."
    ),
]
Scopes = Annotated[
    list[str] | None,
    typer.Option("--scope", help="A scope the client may ask for. Repeat. Default: openid."),
]
Org = Annotated[
    str | None,
    typer.Option("--org", help="The organisation number the client acts for (9 digits)."),
]
GrantTypes = Annotated[
    list[str] | None,
    typer.Option(
        "--grant-type",
        help="authorization_code, refresh_token, client_credentials or "
        "urn:ietf:params:oauth:grant-type:jwt-bearer. Repeat. Default: code and refresh "
        "for people, jwt-bearer with --org and no redirect URI.",
    ),
]
FrontchannelUri = Annotated[
    str | None,
    typer.Option("--frontchannel-logout-uri", help="Loaded in a frame at logout ('' removes)."),
]
BackchannelUri = Annotated[
    str | None,
    typer.Option("--backchannel-logout-uri", help="Sent a logout token at logout ('' removes)."),
]
IdTokenAlg = Annotated[
    str | None, typer.Option("--id-token-alg", help="RS256 or ES256 (default RS256).")
]
AccessSeconds = Annotated[
    int | None,
    typer.Option("--access-token-seconds", help="Access token lifetime, 1-3600 (default 120)."),
]
RefreshSeconds = Annotated[
    int | None,
    typer.Option("--refresh-token-seconds", help="Refresh token lifetime (default 8 hours)."),
]
Sector = Annotated[
    str | None,
    typer.Option("--sector-identifier", help="Pairwise subject sector ('' removes)."),
]
ClientId = Annotated[str, typer.Argument(help="The client's id.", show_default=False)]

# ClientError.field -> the option that sets it, so the message can point at it.
OPTION_OF = {
    "name": "--name",
    "redirect_uris": "--redirect-uri",
    "post_logout_redirect_uris": "--post-logout-uri",
    "auth_method": "--auth-method",
    "jwks": "--jwks-file",
    "scopes": "--scope",
    "grant_types": "--grant-type",
    "orgnr": "--org",
    "id_token_alg": "--id-token-alg",
    "frontchannel_logout_uri": "--frontchannel-logout-uri",
    "backchannel_logout_uri": "--backchannel-logout-uri",
    "access_token_seconds": "--access-token-seconds",
    "refresh_token_seconds": "--refresh-token-seconds",
    "sector_identifier": "--sector-identifier",
    "owner_orgnr": "--owner",
    "description": "--description",
}


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def client_json(client: ClientRecord, secret: str | None = None) -> dict[str, Any]:
    data = client.model_dump(mode="json")
    data["kind"] = "machine" if client.is_machine else "people"
    if secret is not None:
        data["client_secret"] = secret
    return data


def call(work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` on the configured database; the registry's errors become one line."""
    conf = settings()
    try:
        return cast(T, run(with_database(conf, work)))
    except ClientError as exc:
        option = OPTION_OF.get(exc.field)
        fail(f"{exc}" + (f" ({option})" if option else ""), code=2)
    except (UnknownClient, UnknownScope) as exc:
        fail(str(exc))
    except (OperationalError, ProgrammingError) as exc:
        text = str(exc.orig or exc)
        if "no such table" in text or "does not exist" in text:
            fail("The database has no identity tables yet: run `felles db upgrade` first.")
        raise


def read_jwks(path: Path | None) -> dict[str, Any] | None:
    """The JWK set in the file; a single JWK is taken as a set of one."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        fail(f"Cannot read the JWKS file {path}: {reason}.", code=2)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"The JWKS file {path} is not JSON (line {exc.lineno}: {exc.msg}).", code=2)
    if isinstance(value, dict) and "keys" not in value and "kty" in value:
        value = {"keys": [value]}
    if not isinstance(value, dict):
        fail(f'The JWKS file {path} must hold a JWK set: {{"keys": [...]}}.', code=2)
    return value


def fold_ids(table: Table) -> None:
    """Ids and names wrap in a narrow terminal instead of being cut short with '…'."""
    table.columns[0].overflow = "fold"
    table.columns[1].overflow = "fold"


def secret_warning() -> None:
    err.print("Keep the client secret safe: it is shown only this once.", highlight=False)


@clients_app.command("add")
def add(
    name: Annotated[str, typer.Option("--name", help="The service's name, shown to people.")],
    redirect_uri: RedirectUris = None,
    post_logout_uri: PostLogoutUris = None,
    auth_method: AuthMethod = None,
    jwks_file: JwksFile = None,
    scope: Scopes = None,
    require_par: Annotated[
        bool, typer.Option("--require-par", help="Only pushed authorization requests (PAR).")
    ] = False,
    org: Org = None,
    grant_type: GrantTypes = None,
    frontchannel_logout_uri: FrontchannelUri = None,
    backchannel_logout_uri: BackchannelUri = None,
    id_token_alg: IdTokenAlg = None,
    dpop: Annotated[bool, typer.Option("--dpop", help="Require DPoP-bound tokens.")] = False,
    access_token_seconds: AccessSeconds = None,
    refresh_token_seconds: RefreshSeconds = None,
    sector_identifier: Sector = None,
) -> None:
    """Register a client; prints it as JSON, with its secret this once."""
    jwks = read_jwks(jwks_file)
    values: dict[str, Any] = {
        "name": name,
        "redirect_uris": redirect_uri or [],
        "post_logout_redirect_uris": post_logout_uri or [],
        "auth_method": auth_method
        or ("private_key_jwt" if jwks is not None else "client_secret_basic"),
        "jwks": jwks,
        "grant_types": grant_type or None,
        "orgnr": org,
        "require_par": require_par,
        "require_dpop": dpop,
        "frontchannel_logout_uri": frontchannel_logout_uri or None,
        "backchannel_logout_uri": backchannel_logout_uri or None,
        "sector_identifier": sector_identifier or None,
    }
    optional = {
        "scopes": scope,
        "id_token_alg": id_token_alg,
        "access_token_seconds": access_token_seconds,
        "refresh_token_seconds": refresh_token_seconds,
    }
    values.update({k: v for k, v in optional.items() if v is not None})
    new = NewClient.model_validate(values)

    async def work(db: Database) -> tuple[ClientRecord, str | None]:
        async with db.session() as session:
            return await clients.add_client(session, new)

    client, secret = call(work)
    print_json(client_json(client, secret))
    if secret is not None:
        secret_warning()


@clients_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List every client, the disabled ones too."""

    async def work(db: Database) -> list[ClientRecord]:
        async with db.session() as session:
            return await clients.list_clients(session)

    rows = call(work)
    if as_json:
        print_json([client_json(c) for c in rows])
        return
    table = Table("Client id", "Name", "Kind", "Organisation", "Authentication", "Status")
    fold_ids(table)
    for c in rows:
        table.add_row(
            c.client_id,
            c.name,
            "machine" if c.is_machine else "people",
            c.orgnr or "",
            c.auth_method,
            "disabled" if c.disabled else "active",
        )
    out.print(table)


@clients_app.command("show")
def show(client_id: ClientId) -> None:
    """One client as JSON (never its secret: only its hash is kept)."""

    async def work(db: Database) -> ClientRecord:
        async with db.session() as session:
            return await clients.get_client(session, client_id, include_disabled=True)

    print_json(client_json(call(work)))


@clients_app.command("update")
def update(
    client_id: ClientId,
    name: Name = None,
    redirect_uri: RedirectUris = None,
    post_logout_uri: PostLogoutUris = None,
    auth_method: AuthMethod = None,
    jwks_file: JwksFile = None,
    scope: Scopes = None,
    require_par: Annotated[
        bool | None,
        typer.Option("--require-par/--no-require-par", help="Only pushed authorization requests."),
    ] = None,
    org: Org = None,
    grant_type: GrantTypes = None,
    frontchannel_logout_uri: FrontchannelUri = None,
    backchannel_logout_uri: BackchannelUri = None,
    id_token_alg: IdTokenAlg = None,
    dpop: Annotated[
        bool | None, typer.Option("--dpop/--no-dpop", help="Require DPoP-bound tokens.")
    ] = None,
    access_token_seconds: AccessSeconds = None,
    refresh_token_seconds: RefreshSeconds = None,
    sector_identifier: Sector = None,
) -> None:
    """Change a client; only the options given change. Prints the client as JSON.

    A client moved to a secret method gets a new secret, printed this once.
    """
    change = ClientUpdate(
        name=name,
        redirect_uris=redirect_uri,
        post_logout_redirect_uris=post_logout_uri,
        auth_method=auth_method,
        jwks=read_jwks(jwks_file),
        scopes=scope,
        require_par=require_par,
        orgnr=org,
        grant_types=grant_type,
        frontchannel_logout_uri=frontchannel_logout_uri,
        backchannel_logout_uri=backchannel_logout_uri,
        id_token_alg=id_token_alg,
        require_dpop=dpop,
        access_token_seconds=access_token_seconds,
        refresh_token_seconds=refresh_token_seconds,
        sector_identifier=sector_identifier,
    )
    if not change.model_dump(exclude_none=True):
        fail("Nothing to change: give at least one option (see --help).", code=2)

    async def work(db: Database) -> tuple[ClientRecord, str | None]:
        async with db.session() as session:
            before = await clients.get_client(session, client_id, include_disabled=True)
            after = await clients.update_client(session, client_id, change)
            if after.uses_secret and not before.uses_secret:
                return after, await clients.new_secret(session, client_id)
            return after, None

    client, secret = call(work)
    print_json(client_json(client, secret))
    if secret is not None:
        secret_warning()


@clients_app.command("disable")
def disable(client_id: ClientId) -> None:
    """Stop a client at once: no more logins or tokens for it."""

    async def work(db: Database) -> ClientRecord:
        async with db.session() as session:
            return await clients.disable_client(session, client_id)

    client = call(work)
    out.print(f"Client {client.client_id} ({client.name}) is disabled.", highlight=False)


@clients_app.command("enable")
def enable(client_id: ClientId) -> None:
    """Let a disabled client work again."""

    async def work(db: Database) -> ClientRecord:
        async with db.session() as session:
            return await clients.enable_client(session, client_id)

    client = call(work)
    out.print(f"Client {client.client_id} ({client.name}) is enabled.", highlight=False)


@clients_app.command("new-secret")
def new_secret(client_id: ClientId) -> None:
    """Replace the client's secret (the old one stops working now); prints it once."""

    async def work(db: Database) -> str:
        async with db.session() as session:
            return await clients.new_secret(session, client_id)

    secret = call(work)
    print_json({"client_id": client_id, "client_secret": secret})
    secret_warning()


@scopes_app.command("add")
def scope_add(
    name: Annotated[str, typer.Argument(help="The scope, e.g. skatteetaten:inntekt.read.")],
    owner: Annotated[str, typer.Option("--owner", help="Organisation number of the owner.")],
    description: Annotated[str, typer.Option("--description", help="What it gives.")] = "",
    for_people: Annotated[
        bool, typer.Option("--for-people", help="People clients may ask for it too.")
    ] = False,
    for_machines: Annotated[
        bool,
        typer.Option("--for-machines/--not-for-machines", help="Machine clients may get it."),
    ] = True,
    public: Annotated[
        bool, typer.Option("--public", help="Every organisation may use it without a grant.")
    ] = False,
) -> None:
    """Expose an API scope owned by an organisation; prints it as JSON."""

    async def work(db: Database) -> clients.ScopeRecord:
        async with db.session() as session:
            return await clients.add_scope(
                session,
                name,
                owner_orgnr=owner,
                description=description,
                for_people=for_people,
                for_machines=for_machines,
                public=public,
            )

    print_json(call(work).model_dump(mode="json"))


@scopes_app.command("list")
def scope_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Every API scope with the organisations it is granted to."""

    async def work(db: Database) -> list[dict[str, Any]]:
        async with db.session() as session:
            return [
                {**s.model_dump(mode="json"), "grants": await clients.grants(session, s.name)}
                for s in await clients.list_scopes(session)
            ]

    rows = call(work)
    if as_json:
        print_json(rows)
        return
    table = Table("Scope", "Owner", "For", "Public", "Granted to", "Description")
    fold_ids(table)
    for s in rows:
        users = [
            u for u, on in (("people", s["for_people"]), ("machines", s["for_machines"])) if on
        ]
        table.add_row(
            s["name"],
            s["owner_orgnr"],
            ", ".join(users),
            "yes" if s["public"] else "no",
            ", ".join(s["grants"]),
            s["description"],
        )
    out.print(table)


@scopes_app.command("grant")
def scope_grant(
    name: Annotated[str, typer.Argument(help="The scope.")],
    orgnr: Annotated[str, typer.Argument(help="The consumer's organisation number.")],
) -> None:
    """Let an organisation's machine clients use a scope."""

    async def work(db: Database) -> None:
        async with db.session() as session:
            await clients.grant_scope(session, name, orgnr)

    call(work)
    out.print(f"Granted {name} to {orgnr.strip()}.", highlight=False)


@scopes_app.command("revoke")
def scope_revoke(
    name: Annotated[str, typer.Argument(help="The scope.")],
    orgnr: Annotated[str, typer.Argument(help="The consumer's organisation number.")],
) -> None:
    """Take a scope back from an organisation (tokens already issued run out)."""

    async def work(db: Database) -> bool:
        async with db.session() as session:
            had = orgnr.strip().replace(" ", "") in await clients.grants(session, name)
            await clients.revoke_scope(session, name, orgnr)
            return had

    had = call(work)
    if had:
        out.print(f"Revoked {name} from {orgnr.strip()}.", highlight=False)
    else:
        out.print(f"{orgnr.strip()} had no grant for {name}; nothing to revoke.", highlight=False)


# --- Being a machine client: a key pair and a token, as an agency's server does -----------


@clients_app.command("keygen")
def keygen(
    out_prefix: Annotated[
        Path, typer.Option("--out", help="Writes OUT.private.jwk.json and OUT.jwks.json.")
    ],
    alg: Annotated[str, typer.Option(help="ES256 or RS256.")] = "ES256",
) -> None:
    """Make a key pair for a machine client: register the public JWKS, keep the private key."""
    import os

    from joserfc.jwk import ECKey, KeySet, RSAKey

    if alg not in ("ES256", "RS256"):
        fail("--alg must be ES256 or RS256.", code=2)
    key: ECKey | RSAKey = (
        ECKey.generate_key("P-256") if alg == "ES256" else RSAKey.generate_key(2048)
    )
    key.ensure_kid()
    private_path = Path(f"{out_prefix}.private.jwk.json")
    public_path = Path(f"{out_prefix}.jwks.json")
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"{private_path} exists already; choose another --out.")
    except OSError as exc:
        fail(f"Cannot write {private_path} ({exc.strerror}).")
    with os.fdopen(fd, "w") as handle:
        json.dump({**key.as_dict(private=True), "alg": alg}, handle, indent=2)
    public = KeySet([key]).as_dict(private=False)
    for jwk in public["keys"]:
        jwk["alg"], jwk["use"] = alg, "sig"
    public_path.write_text(json.dumps(public, indent=2))
    out.print(
        f"Private key (keep it secret): {private_path}\nPublic key set (register it): "
        f"{public_path}\nkid: {key.kid}",
        highlight=False,
    )


@clients_app.command("token")
def machine_token(
    client_id: ClientId,
    key_file: Annotated[Path, typer.Option("--key", help="The private JWK from `keygen`.")],
    scope: Annotated[list[str], typer.Option("--scope", help="Scopes to ask for.")],
    issuer: Annotated[
        str | None, typer.Option(help="The login service's address (default FELLES_BASE_URL).")
    ] = None,
    resource: Annotated[
        str | None, typer.Option(help="The API's audience, if it wants one.")
    ] = None,
) -> None:
    """Get a machine token with the JWT bearer grant (RFC 7523), as Maskinporten clients do."""
    import secrets
    import time

    import httpx
    from joserfc import jwt
    from joserfc.jwk import ECKey, RSAKey

    try:
        private = json.loads(key_file.read_text())
    except (OSError, ValueError) as exc:
        fail(f"Cannot read the key in {key_file}: {exc}")
    alg = private.get("alg", "ES256")
    key = ECKey.import_key(private) if private.get("kty") == "EC" else RSAKey.import_key(private)
    base = (issuer or settings().issuer).rstrip("/")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "aud": base,
        "scope": " ".join(scope),
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    if resource:
        claims["resource"] = resource
    grant = jwt.encode({"alg": alg, "kid": private.get("kid")}, claims, key, algorithms=[alg])
    try:
        response = httpx.post(
            f"{base}/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": grant},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        fail(f"Cannot reach the login service at {base} ({type(exc).__name__}). Is it running?")
    try:
        body = response.json()
    except ValueError:
        fail(f"The login service answered {response.status_code} without JSON.")
    if response.status_code != 200:
        fail(f"{body.get('error')}: {body.get('error_description')}")
    print_json(body)
