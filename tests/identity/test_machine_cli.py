"""An agency's developer, from the README: a key pair, a machine client, a token."""

from __future__ import annotations

import json
from pathlib import Path

from felles.config import Settings
from felles.db import Database
from felles.registry import service as registry
from tests.conftest import run_felles

felles = run_felles


async def test_keygen_register_and_get_a_machine_token(
    settings: Settings, db: Database, live_server: str, tmp_path: Path
) -> None:
    async with db.session() as session:
        agencies = await registry.list_agencies(session)
    owner, consumer = agencies[0].orgnr, agencies[1].orgnr
    prefix = tmp_path / "agency"
    made = felles(settings, "clients", "keygen", "--out", str(prefix))
    assert made.returncode == 0, made.stderr
    private = Path(f"{prefix}.private.jwk.json")
    assert private.stat().st_mode & 0o077 == 0  # only the owner may read the private key
    assert "d" not in json.loads(Path(f"{prefix}.jwks.json").read_text())["keys"][0]

    assert felles(settings, "scopes", "add", "demo:cli.read", "--owner", owner).returncode == 0
    assert felles(settings, "scopes", "grant", "demo:cli.read", consumer).returncode == 0
    added = felles(
        settings,
        "clients",
        "add",
        "--name",
        "Agency server",
        "--org",
        consumer,
        "--grant-type",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "--jwks-file",
        f"{prefix}.jwks.json",
        "--scope",
        "demo:cli.read",
    )
    assert added.returncode == 0, added.stderr
    client_id = json.loads(added.stdout)["client_id"]

    token = felles(
        settings,
        "clients",
        "token",
        client_id,
        "--key",
        str(private),
        "--scope",
        "demo:cli.read",
        "--issuer",
        live_server,
    )
    assert token.returncode == 0, token.stderr
    body = json.loads(token.stdout)
    assert body["scope"] == "demo:cli.read" and body["token_type"] == "Bearer"

    refused = felles(
        settings,
        "clients",
        "token",
        client_id,
        "--key",
        str(private),
        "--scope",
        "demo:cli.write",
        "--issuer",
        live_server,
    )
    assert refused.returncode == 1 and "invalid_scope" in refused.stderr
    assert "Traceback" not in refused.stderr
    again = felles(settings, "clients", "keygen", "--out", str(prefix))
    assert again.returncode == 1 and "exists already" in again.stderr
