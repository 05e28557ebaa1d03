"""The load generator of bench/identity.py: one process of virtual clients.

bench/identity.py starts two of these processes (multiprocessing, spawn) and sends each
one command per run over a pipe. A process runs `clients` virtual clients on one asyncio
loop (uvloop when installed); each client has its own httpx transport with one
keep-alive connection, and repeats one operation (a scenario) until the deadline.

Requests go straight to httpx's transport (`handle_async_request`): no cookie jar, no
redirect following, no auth flow objects. That is the "minimal cookie handling" of
BENCHMARKING.md: neither server needs cookies for these flows (Felles' CSRF cookie and
oidc-provider's session cookie are ignored), and a flow that sent cookies back would be
a single sign-on reuse rather than a new login.

Only operations that finish before the deadline count; one that fails (a wrong status,
a missing field) counts as an error with a sample of the answer kept for the report.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

FORM = "application/x-www-form-urlencoded"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REQUEST_TIMEOUT_S = 10.0
MAX_ERROR_SAMPLES = 5


C = TypeVar("C", bound="RawClient")


class FlowError(Exception):
    """An answer the flow did not expect."""


@dataclass
class Target:
    """What a scenario needs to know about the server under test (JSON-safe)."""

    issuer: str
    discovery_url: str
    token_endpoint: str
    par_endpoint: str
    authorization_endpoint: str
    userinfo_endpoint: str
    web_client_id: str
    web_client_secret: str
    redirect_uri: str
    scope: str
    login_hints: list[str]
    machine_client_id: str
    machine_cc_client_id: str
    machine_key: dict[str, Any]
    machine_scope: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Target:
        return cls(**data)


@dataclass
class Tally:
    ok: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    steps_ms: dict[str, list[float]] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    def step(self, name: str, ms: float) -> None:
        self.steps_ms.setdefault(name, []).append(ms)


class RawClient:
    """One virtual client's connection: one keep-alive connection, raw requests."""

    def __init__(self) -> None:
        self.transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), retries=0
        )
        self.extensions = {
            "timeout": {
                "connect": REQUEST_TIMEOUT_S,
                "read": REQUEST_TIMEOUT_S,
                "write": REQUEST_TIMEOUT_S,
                "pool": REQUEST_TIMEOUT_S,
            }
        }

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        all_headers = {"accept": "application/json", **(headers or {})}
        content = None
        if form is not None:
            content = urlencode(form).encode()
            all_headers["content-type"] = FORM
        request = httpx.Request(
            method, url, headers=all_headers, content=content, extensions=self.extensions
        )
        response = await self.transport.handle_async_request(request)
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        return response.status_code, dict(response.headers), body

    async def close(self) -> None:
        await self.transport.aclose()


class Client(RawClient):
    """A client of the login service: its target, basic credentials and signing key."""

    def __init__(self, target: Target, key: ECKey) -> None:
        super().__init__()
        self.target = target
        self.key = key
        self.basic = "Basic " + base64.b64encode(
            f"{target.web_client_id}:{target.web_client_secret}".encode()
        ).decode("ascii")

    def signed(self, claims: dict[str, Any]) -> str:
        header = {"alg": "ES256", "kid": self.key.kid}
        return jwt.encode(header, claims, self.key, algorithms=["ES256"])


def expect(status: int, wanted: int, body: bytes, what: str) -> None:
    if status != wanted:
        raise FlowError(f"{what}: HTTP {status} (wanted {wanted}): {body[:300]!r}")


def as_json(body: bytes, what: str, *fields: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise FlowError(f"{what}: not JSON: {body[:200]!r}") from None
    missing = [f for f in fields if f not in data]
    if missing:
        raise FlowError(f"{what}: no {', '.join(missing)} in {body[:300]!r}")
    return dict(data)


# --- Operations ------------------------------------------------------------------------


async def discovery(c: Client, tally: Tally) -> None:
    """GET the discovery document, then the jwks_uri it names."""
    status, _, body = await c.request("GET", c.target.discovery_url)
    expect(status, 200, body, "discovery")
    doc = as_json(body, "discovery", "jwks_uri", "issuer")
    status, _, body = await c.request("GET", doc["jwks_uri"])
    expect(status, 200, body, "jwks")
    if not as_json(body, "jwks", "keys")["keys"]:
        raise FlowError("jwks: no keys")


def _grant_claims(c: Client, client_id: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": client_id,
        "aud": c.target.issuer,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
        **extra,
    }


async def jwt_bearer(c: Client, tally: Tally) -> None:
    """RFC 7523 2.1: the signed grant is the request (Maskinporten's way)."""
    t = c.target
    assertion = c.signed(_grant_claims(c, t.machine_client_id, scope=t.machine_scope))
    form = {"grant_type": JWT_BEARER, "assertion": assertion}
    status, _, body = await c.request("POST", t.token_endpoint, form=form)
    expect(status, 200, body, "token (jwt-bearer)")
    as_json(body, "token (jwt-bearer)", "access_token")


async def client_credentials(c: Client, tally: Tally) -> None:
    """client_credentials, the client authenticated by private_key_jwt (RFC 7523 2.2)."""
    t = c.target
    client_id = t.machine_cc_client_id
    assertion = c.signed(_grant_claims(c, client_id, sub=client_id))
    form = {
        "grant_type": "client_credentials",
        "scope": t.machine_scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    status, _, body = await c.request("POST", t.token_endpoint, form=form)
    expect(status, 200, body, "token (client_credentials)")
    as_json(body, "token (client_credentials)", "access_token")


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def code_flow(c: Client, tally: Tally) -> None:
    """PAR → authorize (headless login, 303 with the code) → token → userinfo."""
    t = c.target
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(12)
    started = time.perf_counter()
    status, _, body = await c.request(
        "POST",
        t.par_endpoint,
        headers={"authorization": c.basic},
        form={
            "client_id": t.web_client_id,
            "response_type": "code",
            "redirect_uri": t.redirect_uri,
            "scope": t.scope,
            "state": state,
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "login_hint": random.choice(t.login_hints),
        },
    )
    expect(status, 201, body, "par")
    request_uri = as_json(body, "par", "request_uri")["request_uri"]
    mark = time.perf_counter()
    tally.step("par", (mark - started) * 1000)

    query = urlencode({"client_id": t.web_client_id, "request_uri": request_uri})
    status, headers, body = await c.request("GET", f"{t.authorization_endpoint}?{query}")
    expect(status, 303, body, "authorize")
    location = headers.get("location", "")
    if not location.startswith(t.redirect_uri):
        raise FlowError(f"authorize: redirected to {location[:200]!r}")
    answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    if "code" not in answer or answer.get("state") != state:
        raise FlowError(f"authorize: no code or wrong state in {location[:200]!r}")
    now = time.perf_counter()
    tally.step("authorize", (now - mark) * 1000)
    mark = now

    status, _, body = await c.request(
        "POST",
        t.token_endpoint,
        headers={"authorization": c.basic},
        form={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": t.redirect_uri,
            "code_verifier": verifier,
        },
    )
    expect(status, 200, body, "token (code)")
    tokens = as_json(body, "token (code)", "access_token", "id_token")
    now = time.perf_counter()
    tally.step("token", (now - mark) * 1000)
    mark = now

    status, _, body = await c.request(
        "GET", t.userinfo_endpoint, headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    expect(status, 200, body, "userinfo")
    as_json(body, "userinfo", "sub")
    tally.step("userinfo", (time.perf_counter() - mark) * 1000)


SCENARIOS: dict[str, Callable[[Client, Tally], Awaitable[None]]] = {
    "discovery": discovery,
    "jwt_bearer": jwt_bearer,
    "client_credentials": client_credentials,
    "code_flow": code_flow,
}


# --- One run ---------------------------------------------------------------------------


async def _user(
    client: Client,
    operation: Callable[[Client, Tally], Awaitable[None]],
    tally: Tally,
    deadline: float,
) -> None:
    """Repeat the operation until the deadline (wall clock, shared with the other process)."""
    while time.time() < deadline:
        started = time.perf_counter()
        try:
            await operation(client, tally)
        except (FlowError, httpx.HTTPError, OSError) as exc:
            if time.time() <= deadline:
                tally.errors += 1
                if len(tally.error_samples) < MAX_ERROR_SAMPLES:
                    tally.error_samples.append(f"{type(exc).__name__}: {exc}"[:400])
            await asyncio.sleep(0.01)  # a refusing server must not be hammered in a spin
            continue
        if time.time() <= deadline:
            tally.ok += 1
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)


async def run_clients(
    clients: list[C],
    start_at: float,
    seconds: float,
    user: Callable[[C], Coroutine[Any, Any, None]],
) -> None:
    """From `start_at` (wall clock, shared by the processes) run `user(client)` for every
    client at once until they all end, then close the clients."""
    try:
        delay = start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        users = [asyncio.create_task(user(c)) for c in clients]
        # Bounded: each request times out after REQUEST_TIMEOUT_S, so the last operation
        # ends at most a few timeouts after the deadline.
        done, pending = await asyncio.wait(users, timeout=seconds + 60)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()


async def run(command: dict[str, Any]) -> dict[str, Any]:
    target = Target.from_json(command["target"])
    operation = SCENARIOS[command["scenario"]]
    key = ECKey.import_key(target.machine_key)
    tally = Tally()
    deadline = command["start_at"] + command["seconds"]
    await run_clients(
        [Client(target, key) for _ in range(command["clients"])],
        command["start_at"],
        command["seconds"],
        lambda c: _user(c, operation, tally, deadline),
    )
    return {
        "ok": tally.ok,
        "errors": tally.errors,
        "latencies_ms": tally.latencies_ms,
        "steps_ms": tally.steps_ms,
        "error_samples": tally.error_samples,
    }


def serve(
    conn: Connection, job: Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]
) -> None:
    """A load-generator process's loop: one command in, `job`'s result out, until told to
    stop (also the loop of bench/_portal_load.py)."""
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    while True:
        if not conn.poll(3600):  # bounded: the parent sends within minutes or is gone
            return
        command = conn.recv()
        if command is None:
            return
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                conn.send(runner.run(job(command)))
        except Exception as exc:
            conn.send({"fatal": f"{type(exc).__name__}: {exc}"})


def worker_main(conn: Connection) -> None:
    """The process's loop for bench/identity.py's scenarios."""
    serve(conn, run)
