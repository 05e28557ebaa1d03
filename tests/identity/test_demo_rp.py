"""The README's tour: register a client, log in through the demo service with TestID,
see the claims, log out everywhere — over real HTTP against `felles serve`."""

from __future__ import annotations

import json
import re
import subprocess

import httpx

from felles.config import Settings
from felles.db import Database
from felles.registry import service as registry
from tests.conftest import felles_command, felles_env


async def test_newcomer_tour(settings: Settings, db: Database, live_server: str) -> None:
    added = subprocess.run(
        felles_command(
            "clients",
            "add",
            "--name",
            "Demo",
            "--redirect-uri",
            f"{live_server}/demo/rp/callback",
            "--post-logout-uri",
            f"{live_server}/demo/rp",
            "--scope",
            "openid",
            "--scope",
            "profile",
        ),
        env=felles_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    client = json.loads(added.stdout)
    async with db.session() as session:
        person = (await registry.list_people(session, limit=1))[0]

    async with httpx.AsyncClient(base_url=live_server, timeout=20) as browser:
        home = await browser.get("/demo/rp")
        assert home.status_code == 200 and "felles clients add" in home.text
        started = await browser.post(
            "/demo/rp/start",
            data={
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
                "acr": "idporten-loa-high",
                "csrf_token": browser.cookies["felles_csrf"],
            },
        )
        authorize = await browser.get(started.headers["location"])
        chooser = await browser.get(authorize.headers["location"])
        assert "TestID" in chooser.text
        auth = httpx.URL(authorize.headers["location"]).params["auth"]
        await browser.get(f"/login/testid?auth={auth}")
        done = await browser.post(
            "/login/testid",
            data={
                "auth": auth,
                "pid": person.pid,
                "acr": "idporten-loa-high",
                "csrf_token": browser.cookies["felles_csrf"],
            },
        )
        assert done.status_code == 303
        shown = await browser.get(done.headers["location"])
        assert shown.status_code == 200, shown.text
        assert person.pid in shown.text and person.family_name in shown.text
        assert "idporten-loa-high" in shown.text
        found = re.search(r'href="([^"]*/endsession\?[^"]*)"', shown.text)
        assert found, "the page offers to log out everywhere"
        logout_url = found.group(1).replace("&amp;", "&")
        out = await browser.get(logout_url)
        assert out.status_code == 200 and f"{live_server}/demo/rp" in out.text
        assert "felles_sso" not in browser.cookies or not browser.cookies.get("felles_sso")
