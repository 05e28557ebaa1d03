"""The shell's own pages: front page, language choice, health, metrics, API docs."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from felles import __version__
from felles.db import DatabaseUnavailable
from felles.registry import service as registry
from felles.web.deps import SessionDep, SettingsDep, get_database
from felles.web.i18n import LANGUAGE_COOKIE, LANGUAGES
from felles.web.problems import PROBLEMS
from felles.web.templating import render, static_url

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def front_page(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    agencies = await registry.list_agencies(session)
    counts = await registry.counts(session) if settings.demo_allowed() else None
    return render(request, "index.html", {"agencies": agencies, "counts": counts})


def safe_next(target: str | None) -> str:
    """Only a path on this site: never `//evil.example` or a scheme (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 32 for c in target):
        return "/"
    return target


@router.get("/language/{lang}", include_in_schema=False)
async def choose_language(
    lang: str, request: Request, settings: SettingsDep, next: Annotated[str | None, Query()] = None
) -> Response:
    """Remember the chosen language for a year and go back to where the person was."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if lang in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            lang,
            max_age=365 * 24 * 3600,
            samesite="lax",
            httponly=True,
            secure=settings.https,
        )
    return response


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    """Browsers and crawlers ask for this path whatever the page says."""
    return RedirectResponse(static_url("favicon.svg"), status_code=301)


@router.get("/healthz", include_in_schema=False)
async def health(request: Request, settings: SettingsDep) -> JSONResponse:
    """Liveness and readiness: 503 when the database (or Redis, if configured) is down."""
    checks: dict[str, str] = {}
    try:
        await get_database(request).ping()
        checks["database"] = "ok"
    except DatabaseUnavailable:
        checks["database"] = "unavailable"
    if settings.redis_url:
        checks["redis"] = "ok" if await redis_answers(settings.redis_url) else "unavailable"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "fail", "version": __version__, "checks": checks},
        status_code=200 if ok else 503,
        media_type="application/health+json",
        headers={"cache-control": "no-store"},
    )


async def redis_answers(url: str) -> bool:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus metrics; with several workers, summed over all of them."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/problems/{slug}", response_class=HTMLResponse, include_in_schema=False)
@router.get("/problems", response_class=HTMLResponse, include_in_schema=False)
async def problem_types(request: Request, slug: str | None = None) -> Response:
    """Explains each problem type our APIs return (the `type` URIs point here)."""
    return render(request, "problems.html", {"problems": PROBLEMS, "selected": slug})


@router.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
async def api_docs(request: Request) -> Response:
    """The API reference, rendered on the server from the OpenAPI document: plain,
    accessible HTML that needs no JavaScript (Swagger UI fails WCAG contrast rules)."""
    spec = request.app.openapi()
    return render(request, "api_docs.html", {"groups": api_reference(spec)})


METHOD_ORDER = ("get", "post", "put", "patch", "delete")


def api_reference(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Operations grouped by tag, each with parameters, body schema and responses."""
    schemas = spec.get("components", {}).get("schemas", {})
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method in METHOD_ORDER:
            operation = item.get(method)
            if operation is None:
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            groups.setdefault((operation.get("tags") or ["other"])[0], []).append(
                {
                    "id": operation.get("operationId", f"{method}-{path}"),
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "parameters": operation.get("parameters", []),
                    "body": _resolve(body.get("schema"), schemas) if body else None,
                    "responses": {
                        code: r.get("description", "")
                        for code, r in operation.get("responses", {}).items()
                    },
                    "secured": bool(operation.get("security")),
                }
            )
    return [{"tag": tag, "operations": ops} for tag, ops in sorted(groups.items())]


def _resolve(schema: Any, schemas: dict[str, Any], depth: int = 0) -> Any:
    """Inline $refs (a few levels deep) so a reader sees the fields in one place."""
    if depth > 4:
        return schema
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _resolve(schemas.get(ref.rsplit("/", 1)[1], {}), schemas, depth + 1)
        return {k: _resolve(v, schemas, depth + 1) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_resolve(v, schemas, depth + 1) for v in schema]
    return schema
