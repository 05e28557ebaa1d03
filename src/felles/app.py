"""create_app(): the ASGI application, built from each part's routers."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from felles import __version__
from felles.config import Settings, get_settings
from felles.db import Database
from felles.events import api as events_api
from felles.events.runtime import EventsRuntime
from felles.identity import account as identity_account
from felles.identity import admin_api as identity_admin_api
from felles.identity import api as identity_api
from felles.identity import demo_rp, passkey_pages, password_pages, upstream_pages
from felles.identity import pages as identity_pages
from felles.identity.runtime import IdentityRuntime
from felles.mailbox import api as mailbox_api
from felles.mailbox import contact_pages as mailbox_contact
from felles.mailbox import inbox_pages as mailbox_inbox
from felles.mailbox import letters_api as mailbox_letters_api
from felles.mailbox import print_api as mailbox_print_api
from felles.mailbox.runtime import MailboxRuntime
from felles.portal import account_pages as portal_account
from felles.portal import api as portal_api
from felles.portal import catalogue_pages as portal_catalogue
from felles.portal import form_pages as portal_form_pages
from felles.portal import inbox_pages as portal_inbox
from felles.portal import login as portal_login
from felles.portal import pages as portal_pages
from felles.portal import web as portal_web
from felles.portal.runtime import PortalRuntime
from felles.web import pages as web_pages
from felles.web.edge import EdgeMiddleware
from felles.web.errors import install_error_handlers
from felles.web.keys import ensure_data_dir, load_or_create_secret
from felles.web.lane import FellesApp
from felles.web.observability import configure_logging
from felles.web.security import CsrfTokens
from felles.web.templating import STATIC_DIR

# Paths whose unsafe requests carry tokens, not cookies, and so need no CSRF token.
CSRF_EXEMPT = ("/api/",)


def create_app(settings: Settings | None = None, *, pooled_db: bool = True) -> FellesApp:
    settings = settings or get_settings()
    ensure_data_dir(settings.data_dir)
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await app.state.identity.start()
        await app.state.events.start()
        await app.state.portal.start()
        await app.state.mailbox.start()
        # Start-up objects live for the whole process: keep the collector off them, and
        # collect less often (requests free their objects by reference counting).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        yield
        await app.state.mailbox.close()
        await app.state.portal.close()
        await app.state.events.close()
        await app.state.identity.close()
        password_login = getattr(app.state, "password_login", None)
        if password_login is not None:  # close its Redis pool, if it has one
            await password_login.limiter.aclose()
        await app.state.db.dispose()

    csrf_tokens = CsrfTokens(load_or_create_secret(settings.keys_dir / "csrf.key"))
    app = FellesApp(
        edge=lambda inner: EdgeMiddleware(
            inner,
            tokens=csrf_tokens,
            max_body=settings.max_body_bytes,
            exempt_prefixes=CSRF_EXEMPT,
            exempt_paths=identity_api.CSRF_EXEMPT_PATHS,
            https=settings.https,
            upload_paths=(
                *portal_form_pages.UPLOAD_PATHS,
                *portal_api.UPLOAD_PATHS,
                *mailbox_letters_api.UPLOAD_PATHS,
            ),
        ),
        title="Felles",
        version=__version__,
        description="Common digital building blocks for a public sector.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = Database(
        settings.resolved_database_url, connections=settings.db_connections, pooled=pooled_db
    )
    app.state.identity = IdentityRuntime(settings, app.state.db)
    app.state.events = EventsRuntime(settings, app.state.db)
    app.state.portal = PortalRuntime(settings, app.state.db)
    app.state.mailbox = MailboxRuntime(settings, app.state.db)

    install_error_handlers(app)
    portal_web.install(app)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(web_pages.router)
    app.include_lane(identity_api.lane)
    app.include_router(identity_pages.router)
    app.include_router(identity_account.router)
    app.include_router(identity_admin_api.router)
    app.include_router(portal_api.router)
    app.include_router(mailbox_api.router)
    app.include_router(mailbox_letters_api.router)
    app.include_router(mailbox_print_api.router)
    app.include_router(demo_rp.router)
    app.include_router(
        events_api.router_for(
            "/api/portal/v1", "felles:portal.submissions", "no.felles.portal.", "portal events"
        )
    )
    app.include_router(
        events_api.router_for(
            "/api/mailbox/v1", mailbox_letters_api.SEND_SCOPE, "no.felles.mailbox.", "mail events"
        )
    )
    for method in (password_pages, passkey_pages, upstream_pages):
        app.include_router(method.router)
    for part in (
        portal_login,
        portal_pages,
        portal_form_pages,
        portal_inbox,
        portal_catalogue,
        portal_account,
        mailbox_inbox,
        mailbox_contact,
    ):
        app.include_router(part.router)
    return app


def app_factory() -> FellesApp:
    """Entry point for `uvicorn --factory` (each worker process builds its own app)."""
    return create_app()
