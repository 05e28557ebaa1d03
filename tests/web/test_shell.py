"""The page shell over HTTP: headers, CSRF, languages, errors, health and metrics."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Form

from felles.app import create_app
from felles.config import Settings
from felles.web.security import CSRF_COOKIE, CsrfTokens


async def test_front_page_is_plain_html_with_the_shell(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    html = response.text
    assert '<html lang="nb"' in html
    assert 'href="#main"' in html and 'id="main"' in html
    assert "<header" in html and "<footer" in html and "<nav" in html
    assert "<script" not in html  # the shell works without JavaScript


async def test_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in response.headers  # plain http in tests
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_hsts_when_served_over_https(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"base_url": "https://felles.example"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://felles.example") as c:
        response = await c.get("/")
        health = await c.get("/healthz")
    assert "max-age=" in response.headers["strict-transport-security"]
    assert "Secure" in response.headers["set-cookie"]
    assert "max-age=" in health.headers["strict-transport-security"]


async def test_protocol_and_api_answers_set_no_csrf_cookie(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/.well-known/openid-configuration", "/jwks", "/api/openapi.json"):
        response = await client.get(path)
        assert "set-cookie" not in response.headers, path
    page = await client.get("/problems")
    assert "felles_csrf=" in page.headers["set-cookie"]  # pages get one for their forms


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("nn-NO,nn;q=0.9", "nn"),
        ("en-GB,en;q=0.8", "en"),
        ("de-DE,nb;q=0.5,en;q=0.4", "nb"),
        ("fr-FR", "nb"),
        ("no;q=0.9,en;q=0.95", "en"),
        ("garbage;q=x,,;", "nb"),
    ],
)
async def test_language_follows_the_browser(
    client: httpx.AsyncClient, header: str, expected: str
) -> None:
    response = await client.get("/", headers={"accept-language": header})
    assert f'<html lang="{expected}"' in response.text


async def test_chosen_language_is_remembered(client: httpx.AsyncClient) -> None:
    response = await client.get("/language/nn", params={"next": "/problems"})
    assert response.status_code == 303
    assert response.headers["location"] == "/problems"
    assert "felles_lang=nn" in response.headers["set-cookie"]
    page = await client.get("/", headers={"accept-language": "en"})
    assert '<html lang="nn"' in page.text
    english = await client.get("/language/en")
    assert english.headers["location"] == "/"
    assert '<html lang="en"' in (await client.get("/")).text
    assert "Public services in one place" in (await client.get("/")).text


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x", ""]
)
async def test_language_switch_is_no_open_redirect(client: httpx.AsyncClient, target: str) -> None:
    response = await client.get("/language/en", params={"next": target})
    assert response.headers["location"] == "/"


async def test_unknown_language_changes_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/language/sv", params={"next": "/"})
    assert response.status_code == 303
    assert "felles_lang" not in response.headers.get("set-cookie", "")


async def test_unknown_page_is_a_friendly_404_in_the_chosen_language(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/no/such/page", headers={"accept-language": "en"})
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "We could not find that page" in response.text
    client.cookies.set("felles_lang", "nb")
    norwegian = await client.get("/no/such/page")
    assert 'lang="nb"' in norwegian.text
    assert "We could not find that page" not in norwegian.text  # translated


async def test_unknown_api_route_is_a_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing/v1/here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/not-found"
    assert body["status"] == 404
    assert body["title"]
    assert body["instance"] == "/api/nothing/v1/here"


async def test_problem_types_are_explained(client: httpx.AsyncClient) -> None:
    response = await client.get("/problems/not-found")
    assert response.status_code == 200
    assert 'id="not-found"' in response.text


async def test_health_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok"}
    assert response.headers["content-type"].startswith("application/health+json")


async def test_health_reports_a_database_that_is_down(settings: Settings) -> None:
    broken = settings.model_copy(
        update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/nothing"}
    )
    transport = httpx.ASGITransport(app=create_app(broken))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "unavailable"}


async def test_health_checks_redis_when_configured(settings: Settings) -> None:
    for url, expected in (("redis://127.0.0.1:6379/0", 200), ("redis://127.0.0.1:1/0", 503)):
        transport = httpx.ASGITransport(
            app=create_app(settings.model_copy(update={"redis_url": url}))
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/healthz")
        assert response.status_code == expected
        assert response.json()["checks"]["redis"] == ("ok" if expected == 200 else "unavailable")


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.get("/")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert 'felles_http_requests_total{method="GET",route="/",status="200"}' in response.text


async def test_static_files_are_counted_under_their_mount(client: httpx.AsyncClient) -> None:
    assert (await client.get("/static/css/felles.css")).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert 'felles_http_requests_total{method="GET",route="/static",status="200"}' in metrics


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/openapi.json")).json()
    assert spec["info"]["title"] == "Felles"
    docs = await client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.text
    assert "<script>" not in docs.text  # no inline script: the CSP forbids it


# --- CSRF and body limits on a form that a part would add ---------------------------------


@pytest.fixture(scope="module")
def form_app(settings: Settings) -> FastAPI:
    app = create_app(settings.model_copy(update={"max_body_bytes": 4096}))
    router = APIRouter()

    @router.post("/form")
    async def post_form(name: str = Form()) -> dict[str, str]:
        return {"name": name}

    @router.post("/api/test/v1/things")
    async def post_api(payload: dict[str, object]) -> dict[str, object]:
        return payload

    app.include_router(router)
    return app


@pytest.fixture
async def form_client(form_app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=form_app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _token(c: httpx.AsyncClient) -> str:
    await c.get("/")
    token = c.cookies.get(CSRF_COOKIE)
    assert token
    return token


async def test_form_post_with_token_is_accepted(form_client: httpx.AsyncClient) -> None:
    async with form_client as c:
        token = await _token(c)
        response = await c.post("/form", data={"name": "Kari", "csrf_token": token})
        assert response.status_code == 200
        assert response.json() == {"name": "Kari"}  # the handler still reads the body
        multipart = await c.post(
            "/form", data={"name": "Ola", "csrf_token": token}, files={"f": ("a.txt", b"x")}
        )
        assert multipart.json() == {"name": "Ola"}


@pytest.mark.parametrize(
    "token",
    [None, "", "forged.0000", "x" * 200, "a.b.c"],
)
async def test_form_post_without_a_valid_token_is_refused(
    form_client: httpx.AsyncClient, token: str | None
) -> None:
    async with form_client as c:
        await _token(c)
        data = {"name": "Kari"} | ({"csrf_token": token} if token is not None else {})
        response = await c.post("/form", data=data)
    assert response.status_code == 403
    assert "The form has expired" in response.text or "skjemaet" in response.text.lower()


async def test_token_from_another_browser_is_refused(form_client: httpx.AsyncClient) -> None:
    async with form_client as c:
        theirs = CsrfTokens(b"k" * 32).new()
        await _token(c)
        response = await c.post("/form", data={"name": "x", "csrf_token": theirs})
    assert response.status_code == 403


async def test_first_post_without_cookie_is_refused(form_client: httpx.AsyncClient) -> None:
    async with form_client as c:
        response = await c.post("/form", data={"name": "x", "csrf_token": "a.b"})
    assert response.status_code == 403


async def test_apis_use_tokens_not_cookies_so_skip_csrf(form_client: httpx.AsyncClient) -> None:
    async with form_client as c:
        response = await c.post("/api/test/v1/things", json={"a": 1})
    assert response.status_code == 200


async def test_huge_bodies_are_refused_before_they_are_read(
    form_client: httpx.AsyncClient,
) -> None:
    async with form_client as c:
        declared = await c.post("/api/test/v1/things", content=b"{" + b" " * 10_000 + b"}")
        assert declared.status_code == 413
        assert declared.json()["type"] == "/problems/payload-too-large"

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b" " * 1000

        streamed = await c.post(
            "/api/test/v1/things", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        page = await c.post("/form", content=b"x" * 10_000)
        assert page.status_code == 413
        assert "text/html" in page.headers["content-type"]


async def test_api_validation_errors_name_the_field(form_client: httpx.AsyncClient) -> None:
    async with form_client as c:
        response = await c.post(
            "/api/test/v1/things", content=b"[1, 2", headers={"content-type": "application/json"}
        )
        assert response.status_code == 422
        body = response.json()
        assert body["type"] == "/problems/validation"
        assert body["errors"] and "field" in body["errors"][0]
        wrong_type = await c.post("/api/test/v1/things", json=[1, 2])
        assert wrong_type.status_code == 422


async def test_unhandled_errors_give_a_reference_and_log_json_without_pids(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("lookup failed for 01818012345")

    @app.get("/api/x/v1/boom")
    async def api_boom() -> None:
        raise RuntimeError("lookup failed for 01818012345")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        page = await c.get("/boom", headers={"x-request-id": "abcdef12345678"})
        api = await c.get("/api/x/v1/boom")
    assert page.status_code == 500
    assert "abcdef12345678" in page.text
    assert api.status_code == 500
    assert api.json()["type"] == "/problems/internal"
    assert api.json()["request_id"] == api.headers["x-request-id"]
    logged = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    errors = [entry for entry in logged if entry["event"] == "unhandled_error"]
    assert len(errors) == 2
    assert all("01818012345" not in json.dumps(entry) for entry in logged)
    assert "018180*****" in errors[0]["exception"]
    assert errors[0]["request_id"] == "abcdef12345678"
