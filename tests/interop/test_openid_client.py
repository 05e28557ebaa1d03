"""Interop: openid-client v6 (Node, panva) drives the real provider over real HTTP.

`openid_client_flow.mjs` runs the whole relying-party side with the library's own API
(discovery, PAR, PKCE, the code grant with its RFC 9207 `iss`, nonce and ID token
signature checks, userinfo, refresh, introspection, revocation, RP-initiated logout)
and prints what it saw; the tests here judge that against the specs. The client's
back-channel logout URI is a small real HTTP server in this process, and the logout
token it receives is verified against the provider's published JWKS.

The library is pinned in `package-lock.json` and installed once per session with
`npm ci` into `tests/interop/node_modules` (ignored by git). Without npm or node the
tests skip with a message; under CI=true they fail instead.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from felles.db import Database
from felles.identity import clients
from felles.registry import service as registry

HERE = Path(__file__).parent
SCRIPT = HERE / "openid_client_flow.mjs"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
HIGH = "idporten-loa-high"
IN_CI = os.environ.get("CI") == "true"


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message + " (CI=true requires the Node interop tests)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with openid-client installed from the lockfile (once)."""
    node_bin, npm_bin = shutil.which("node"), shutil.which("npm")
    if node_bin is None or npm_bin is None:
        _unavailable("node and npm are needed for the openid-client interop tests")
    assert node_bin is not None and npm_bin is not None
    modules = HERE / "node_modules"
    installed = modules / ".package-lock.json"  # npm writes it after a complete install
    lockfile = HERE / "package-lock.json"
    # Another test run on this work tree may be installing at the same time.
    tree = hashlib.sha256(str(HERE).encode()).hexdigest()[:12]
    with (Path(tempfile.gettempdir()) / f"felles-interop-npm-{tree}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (
            not installed.exists()
            or installed.stat().st_mtime < lockfile.stat().st_mtime
            or not (modules / "openid-client" / "package.json").exists()
        ):
            try:
                subprocess.run(
                    [npm_bin, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                    cwd=HERE,
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                output = str(getattr(exc, "stderr", "") or "").strip()
                _unavailable(f"npm ci in {HERE} failed: {output[-500:] or exc}")
    return node_bin


# --- The client's back-channel logout endpoint: a real HTTP server -----------------------


@dataclass
class Received:
    path: str
    content_type: str
    form: dict[str, list[str]]


@dataclass
class RelyingPartyServer:
    """Receives back-channel logout POSTs (OpenID Connect Back-Channel Logout 1.0, 2.5)."""

    base_url: str
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture(scope="module")
def rp_server() -> Iterator[RelyingPartyServer]:
    state = RelyingPartyServer(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            state.received.append(
                Received(self.path, self.headers.get("content-type", ""), parse_qs(body))
            )
            state.arrived.set()
            self.send_response(200)
            self.send_header("cache-control", "no-store")  # as section 2.8 asks
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test asserts on what arrived; no noise on stderr

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="rp-backchannel", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- One registered client and one run of the flow for the whole module ------------------


@dataclass(frozen=True)
class Registered:
    client_id: str
    secret: str
    redirect_uri: str
    post_logout_redirect_uri: str
    backchannel_logout_uri: str


@pytest.fixture(scope="module")
async def registered(db: Database, rp_server: RelyingPartyServer) -> Registered:
    redirect_uri = f"{rp_server.base_url}/callback"
    post_logout = f"{rp_server.base_url}/logged-out"
    backchannel = f"{rp_server.base_url}/backchannel-logout"
    async with db.session() as session:
        client, secret = await clients.add_client(
            session,
            clients.NewClient(
                name="openid-client interop",
                redirect_uris=[redirect_uri],
                post_logout_redirect_uris=[post_logout],
                backchannel_logout_uri=backchannel,
                scopes=["openid", "profile"],
                auth_method="client_secret_basic",
            ),
        )
    assert secret is not None
    return Registered(client.client_id, secret, redirect_uri, post_logout, backchannel)


@pytest.fixture(scope="module")
async def pid(db: Database) -> str:
    async with db.session() as session:
        people = await registry.list_people(session, limit=1, offset=11)
    return people[0].pid


@pytest.fixture(scope="module")
async def observed(node: str, live_server: str, registered: Registered, pid: str) -> dict[str, Any]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FELLES_", "CLIENT_"))},
        "FELLES_ISSUER": live_server,
        "CLIENT_ID": registered.client_id,
        "CLIENT_SECRET": registered.secret,
        "REDIRECT_URI": registered.redirect_uri,
        "POST_LOGOUT_REDIRECT_URI": registered.post_logout_redirect_uri,
        "PID": pid,
        "ACR": HIGH,
    }
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        cwd=HERE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    lines = stdout.decode().strip().splitlines()
    assert lines, f"the script printed nothing; stderr:\n{stderr.decode()}"
    observed: dict[str, Any] = json.loads(lines[-1])
    assert process.returncode == 0 and "fatal" not in observed, (
        f"openid-client flow failed: {json.dumps(observed, indent=2)}\n{stderr.decode()}"
    )
    return observed


@pytest.fixture(scope="module")
async def provider_keys(live_server: str) -> KeySet:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{live_server}/jwks")
    response.raise_for_status()
    return KeySet.import_key_set(response.json())


# --- What openid-client saw ---------------------------------------------------------------


def test_discovery_is_accepted_as_is(observed: dict[str, Any], live_server: str) -> None:
    discovery = observed["discovery"]
    assert discovery["issuer"] == live_server
    assert discovery["pushed_authorization_request_endpoint"] == f"{live_server}/par"
    assert discovery["authorization_response_iss_parameter_supported"] is True
    assert discovery["supportsPKCE"] is True


def test_par_leaves_only_client_id_and_request_uri_in_the_browser(
    observed: dict[str, Any],
) -> None:
    # RFC 9126 4: the authorization request carries only client_id and request_uri.
    assert observed["par"]["authorize_params"] == ["client_id", "request_uri"]


def test_testid_login_answers_with_code_state_and_iss(
    observed: dict[str, Any], live_server: str, registered: Registered
) -> None:
    authorize = observed["authorize"]
    assert authorize["status"] in (302, 303)
    assert authorize["location_base"] == registered.redirect_uri
    assert authorize["params"] == ["code", "iss", "state"]
    assert authorize["iss"] == live_server  # RFC 9207 2
    assert authorize["state_matches"] is True
    [sso] = [c for c in authorize["cookies"] if c["name"] == "felles_sso"]
    assert "httponly" in sso["attributes"]
    assert "samesite=lax" in sso["attributes"]


def test_id_token_passes_the_library_and_says_who_at_which_level(
    observed: dict[str, Any],
    registered: Registered,
    pid: str,
    live_server: str,
    provider_keys: KeySet,
) -> None:
    claims = observed["id_token_claims"]
    # openid-client checked the signature (enableNonRepudiationChecks); so do we.
    verified = jwt.decode(observed["tokens"]["id_token"], provider_keys, algorithms=["RS256"])
    assert dict(verified.claims) == claims
    assert claims["iss"] == live_server
    assert claims["aud"] == registered.client_id
    assert claims["acr"] == HIGH
    assert claims["amr"] == ["TestID"]
    assert claims["pid"] == pid
    assert claims["sub"] != pid  # pairwise, never the national identity number
    assert pid not in claims["sub"]
    assert isinstance(claims["sid"], str) and claims["sid"]
    assert isinstance(claims["auth_time"], int)
    assert observed["tokens"]["id_token_header"]["alg"] == "RS256"  # the registered default
    assert observed["tokens"]["access_token_header"]["typ"] == "at+jwt"  # RFC 9068 2.1
    assert observed["tokens"]["token_type"].lower() == "bearer"
    assert observed["tokens"]["scope"].split() == ["openid", "profile"]
    assert observed["tokens"]["has_refresh_token"] is True


def test_a_code_works_once_and_its_replay_revokes_its_tokens(observed: dict[str, Any]) -> None:
    replay = observed["code_replay"]
    assert replay["ok"] is False
    assert replay["error"] == "invalid_grant"  # RFC 6749 4.1.2 and 5.2
    # RFC 6749 4.1.2: the server SHOULD revoke the tokens issued from that code.
    assert observed["introspect_after_code_replay"]["access"]["active"] is False
    assert observed["introspect_after_code_replay"]["refresh"]["active"] is False


def test_userinfo_matches_the_id_token_subject(observed: dict[str, Any], pid: str) -> None:
    claims = observed["id_token_claims"]
    for info in (observed["userinfo"], observed["userinfo_after_refresh"]):
        assert info["sub"] == claims["sub"]  # OIDC Core 5.3.2, checked by the library too
        assert info["pid"] == pid
        assert info["acr"] == HIGH
        assert info["name"] and info["family_name"] and info["birthdate"]  # profile scope


def test_introspection_describes_both_tokens(
    observed: dict[str, Any], registered: Registered
) -> None:
    sub = observed["id_token_claims"]["sub"]
    access = observed["introspect_access"]
    assert access["active"] is True
    assert access["client_id"] == registered.client_id
    assert access["sub"] == sub
    assert access["scope"] == "openid profile"
    refresh = observed["introspect_refresh"]
    assert refresh["active"] is True
    assert refresh["client_id"] == registered.client_id
    assert refresh["sub"] == sub


def test_refresh_rotates_and_a_reused_refresh_token_kills_the_family(
    observed: dict[str, Any],
) -> None:
    assert observed["refresh"]["ok"] is True
    assert observed["refresh"]["rotated"] is True
    assert observed["refresh"]["new_access_token"] is True
    assert observed["refresh"]["scope"].split() == ["openid", "profile"]
    reuse = observed["refresh_reuse"]
    assert reuse["ok"] is False
    assert reuse["error"] == "invalid_grant"  # RFC 9700 4.14.2: reuse detected
    assert observed["introspect_rotated_after_reuse"]["active"] is False
    assert observed["refresh_rotated_after_reuse"]["error"] == "invalid_grant"


def test_sso_gives_a_silent_code_for_the_same_session(observed: dict[str, Any]) -> None:
    first, silent = observed["id_token_claims"], observed["sso"]["id_token_claims"]
    assert silent["sid"] == first["sid"]
    assert silent["sub"] == first["sub"]
    assert silent["acr"] == HIGH


def test_a_revoked_access_token_is_dead(observed: dict[str, Any]) -> None:
    assert observed["introspect_revoked_access"]["active"] is False  # RFC 7009 2, RFC 7662 2.2
    refused = observed["userinfo_revoked"]
    assert refused["ok"] is False
    assert refused["status"] == 401


def test_logout_clears_the_session_and_returns_to_the_client(observed: dict[str, Any]) -> None:
    logout = observed["logout"]
    assert logout["status"] in (200, 302, 303)
    assert [c["deleted"] for c in logout["cookies"] if c["name"] == "felles_sso"] == [True]
    assert logout["returns_to_client_with_state"] is True  # RP-Initiated Logout 1.0, 3
    # The session's refresh tokens: alive before the logout, refused after it.
    assert observed["introspect_refresh_before_logout"]["active"] is True
    assert observed["refresh_after_logout"]["error"] == "invalid_grant"


def test_prompt_none_after_logout_is_login_required(
    observed: dict[str, Any], live_server: str
) -> None:
    after = observed["prompt_none_after_logout"]
    assert after["sent_old_cookie"] is True
    assert after["status"] in (302, 303)
    assert after["query"]["error"] == "login_required"  # OIDC Core 3.1.2.6
    assert after["query"]["iss"] == live_server
    assert after["library"]["ok"] is False
    assert after["library"]["error"] == "login_required"


def test_backchannel_logout_token_verifies(
    observed: dict[str, Any],
    rp_server: RelyingPartyServer,
    registered: Registered,
    provider_keys: KeySet,
    live_server: str,
) -> None:
    """OpenID Connect Back-Channel Logout 1.0, sections 2.4 to 2.6."""
    assert rp_server.arrived.wait(timeout=5), "no back-channel logout request arrived"
    assert len(rp_server.received) == 1
    request = rp_server.received[0]
    assert request.path == "/backchannel-logout"
    assert request.content_type.startswith("application/x-www-form-urlencoded")  # 2.5
    assert list(request.form) == ["logout_token"]
    [logout_token] = request.form["logout_token"]

    token = jwt.decode(logout_token, provider_keys, algorithms=["RS256"])
    assert token.header["typ"] == "logout+jwt"  # 2.4 (recommended explicit typing)
    claims = dict(token.claims)
    JWTClaimsRegistry(
        leeway=10,
        iss={"essential": True, "value": live_server},
        aud={"essential": True, "value": registered.client_id},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
    ).validate(claims)
    id_claims = observed["id_token_claims"]
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert claims["sid"] == id_claims["sid"]
    assert claims["sub"] == id_claims["sub"]
    assert "nonce" not in claims  # 2.4: a nonce MUST NOT be present
