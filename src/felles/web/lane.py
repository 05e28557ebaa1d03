"""The fast lane: protocol endpoints answered without Starlette's router and FastAPI's
dependency solving.

Hot endpoints such as /token and /userinfo are plain `async def f(request) -> Response`:
they need no routing by pattern, no dependencies and no parameter validation, and
going through all of that cost more server CPU than many of them spend on their own
work. `Lane` registers such an endpoint on an APIRouter as usual (so it stays in the
OpenAPI document and FastAPI still answers anything the lane does not take) and
remembers it; `FellesApp` answers requests for its exact path and methods directly.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Any]


@dataclass(frozen=True, slots=True)
class LaneRoute:
    route: APIRoute  # what scope["route"] holds, as if the router had matched it
    endpoint: Endpoint
    method: str


class Lane:
    """Decorators like APIRouter's (`get`, `post`, `api_route`) that also mark the
    endpoint for the fast lane. The app includes `router` through `include_lane`."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self.routes: list[LaneRoute] = []

    def api_route(
        self, path: str, *, methods: list[str], include_in_schema: bool = True
    ) -> Callable[[Endpoint], Endpoint]:
        def register(endpoint: Endpoint) -> Endpoint:
            # One route per method: each gets its own OpenAPI operationId (FastAPI would
            # give a multi-method route one id, from whichever method a set yields first).
            for method in methods:
                self.router.api_route(path, methods=[method], include_in_schema=include_in_schema)(
                    endpoint
                )
                route = self.router.routes[-1]
                assert isinstance(route, APIRoute) and route.endpoint is endpoint
                _check_plain(route)
                self.routes.append(LaneRoute(route, endpoint, method))
            return endpoint

        return register

    def get(self, path: str, *, include_in_schema: bool = True) -> Callable[[Endpoint], Endpoint]:
        return self.api_route(path, methods=["GET"], include_in_schema=include_in_schema)

    def post(self, path: str, *, include_in_schema: bool = True) -> Callable[[Endpoint], Endpoint]:
        return self.api_route(path, methods=["POST"], include_in_schema=include_in_schema)


def _check_plain(route: APIRoute) -> None:
    """Only `async def f(request: Request) -> Response` with no dependencies: the lane
    skips what FastAPI would do for anything more."""
    d = route.dependant
    fields = d.path_params + d.query_params + d.header_params + d.cookie_params + d.body_params
    if (
        not inspect.iscoroutinefunction(route.endpoint)
        or len(inspect.signature(route.endpoint).parameters) != 1
        or d.request_param_name is None
        or fields
        or d.dependencies
    ):
        raise TypeError(f"{route.path} cannot take the fast lane: it is not f(request)")


class FellesApp(FastAPI):
    """FastAPI with the edge middleware around everything and a fast lane in front of
    the router.

    `edge` wraps the app's own dispatch (the fast lane, else FastAPI as usual); it is
    also the last resort for errors, so Starlette's ServerErrorMiddleware (which would
    answer in plain text and re-raise to the server) is left out of FastAPI's stack.
    """

    def __init__(self, *, edge: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lane: dict[tuple[str, str], LaneRoute] = {}  # by (path, method)
        self.edge = edge(self.dispatch)
        self._handlers: dict[Any, Handler] = {}

    def include_lane(self, lane: Lane) -> None:
        """Include `lane`'s router as usual (for the OpenAPI document, its other routes,
        and 404 and 405), and answer its lane routes directly."""
        self.include_router(lane.router)
        for lane_route in lane.routes:
            self.lane[lane_route.route.path, lane_route.method] = lane_route

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        assert isinstance(stack, ServerErrorMiddleware)
        self._handlers = {
            key: handler
            for key, handler in self.exception_handlers.items()
            if key not in (500, Exception)
        }
        return stack.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await self.edge(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A lane route if the exact path and method are one; otherwise FastAPI, which
        also gives 404 and 405 as usual."""
        lane_route = self.lane.get((scope["path"], scope["method"]))
        if lane_route is None:
            await super().__call__(scope, receive, send)
            return
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        route = lane_route.route
        scope["router"] = self.router
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        try:
            response = await lane_route.endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        """The app's exception handler for `exc`, found the way Starlette finds it."""
        if isinstance(exc, HTTPException) and exc.status_code in self._handlers:
            return self._handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in self._handlers:
                return self._handlers[cls]
        return None
