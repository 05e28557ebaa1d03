"""The fast lane: protocol endpoints answered past FastAPI's router, with the same answers,
headers, errors, logs and metrics as any other route."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from felles.app import create_app
from felles.config import Settings
from felles.identity import api as identity_api
from felles.web.lane import FellesApp, Lane
from felles.web.problems import ProblemError


def test_every_protocol_endpoint_takes_the_lane(app: FellesApp) -> None:
    assert set(app.lane) == {
        ("/.well-known/openid-configuration", "GET"),
        ("/jwks", "GET"),
        ("/authorize", "GET"),
        ("/authorize", "POST"),
        ("/par", "POST"),
        ("/token", "POST"),
        ("/userinfo", "GET"),
        ("/userinfo", "POST"),
        ("/introspect", "POST"),
        ("/revoke", "POST"),
    }
    assert all(r.route.endpoint is r.endpoint for r in identity_api.lane.routes)
    assert all(r.route.methods == {r.method} for r in identity_api.lane.routes)


def test_operation_ids_are_unique_and_name_their_method(app: FellesApp) -> None:
    """OpenAPI requires unique operationIds; generated clients name methods by them."""
    operations = [
        (path, method, op["operationId"])
        for path, item in app.openapi()["paths"].items()
        for method, op in item.items()
    ]
    ids = [op for _, _, op in operations]
    assert len(ids) == len(set(ids))
    userinfo = {method: op for path, method, op in operations if path == "/userinfo"}
    assert userinfo == {"get": "userinfo_userinfo_get", "post": "userinfo_userinfo_post"}


async def test_lane_answers_carry_the_edge_headers_and_route_metrics(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/jwks", headers={"x-request-id": "lane-check-0001"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    assert response.headers["x-request-id"] == "lane-check-0001"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert "set-cookie" not in response.headers
    metrics = (await client.get("/metrics")).text
    assert 'felles_http_requests_total{method="GET",route="/jwks",status="200"}' in metrics


async def test_other_methods_and_paths_fall_through_to_fastapi(client: httpx.AsyncClient) -> None:
    put = await client.put("/token", headers={"accept": "application/json"})
    assert put.status_code == 405
    assert put.headers["allow"] == "POST"
    assert put.json()["type"] == "/problems/method-not-allowed"
    assert (await client.head("/jwks")).status_code == 405
    slash = await client.get("/jwks/")
    assert slash.status_code == 307
    assert slash.headers["location"] == "http://testserver/jwks"


async def test_pages_rendered_by_lane_endpoints_work(client: httpx.AsyncClient) -> None:
    page = await client.get("/authorize", headers={"accept-language": "en"})
    assert page.status_code == 400
    assert '<html lang="en"' in page.text


@pytest.fixture(scope="module")
def lane_app(settings: Settings) -> FellesApp:
    """The real app with extra lane endpoints that fail in each way an endpoint can."""
    app = create_app(settings)
    router = APIRouter()
    lane = Lane(router)

    @lane.get("/lane-test/problem")
    async def problem(request: Request) -> Response:
        raise ProblemError("forbidden", "Not you")

    @lane.get("/lane-test/http")
    async def http_error(request: Request) -> Response:
        raise HTTPException(status_code=404)

    @lane.get("/api/lane-test/boom")
    async def boom(request: Request) -> Response:
        raise RuntimeError("lookup failed for 01818012345")

    @lane.post("/api/lane-test/state")  # CSRF-exempt by prefix
    async def state(request: Request) -> Response:
        body = await request.body()
        url = str(request.url_for("state"))
        return JSONResponse({"id": request.state.request_id, "body": body.decode(), "url": url})

    app.include_lane(lane)
    return app


@pytest.fixture
async def lane_client(lane_app: FellesApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=lane_app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_lane_errors_go_to_the_apps_exception_handlers(
    lane_client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    async with lane_client as c:
        problem = await c.get("/lane-test/problem")
        missing = await c.get("/lane-test/http", headers={"accept": "application/json"})
        boom = await c.get("/api/lane-test/boom")
    assert problem.status_code == 403
    assert problem.json()["detail"] == "Not you"
    assert missing.status_code == 404
    assert missing.json()["type"] == "/problems/not-found"
    assert boom.status_code == 500
    assert boom.json()["type"] == "/problems/internal"
    assert boom.json()["request_id"] == boom.headers["x-request-id"]
    assert "content-security-policy" in boom.headers
    logged = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    errors = [entry for entry in logged if entry["event"] == "unhandled_error"]
    assert len(errors) == 1
    assert errors[0]["route"] == "/api/lane-test/boom"
    assert "018180*****" in errors[0]["exception"] and "01818012345" not in json.dumps(logged)
    requests = {(e["route"], e["status"]) for e in logged if e["event"] == "request"}
    assert requests >= {("/lane-test/problem", 403), ("/api/lane-test/boom", 500)}


async def test_lane_request_has_state_body_and_url_for(lane_client: httpx.AsyncClient) -> None:
    async with lane_client as c:
        response = await c.post(
            "/api/lane-test/state", content=b"hello", headers={"x-request-id": "state-check-01"}
        )
    assert response.json() == {
        "id": "state-check-01",
        "body": "hello",
        "url": "http://testserver/api/lane-test/state",
    }


def test_only_plain_request_endpoints_may_take_the_lane() -> None:
    lane = Lane(APIRouter())
    with pytest.raises(TypeError, match="fast lane"):

        @lane.get("/with-query")
        async def with_query(request: Request, q: str) -> Response:
            return Response()
