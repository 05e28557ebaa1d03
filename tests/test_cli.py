"""The `felles` command end to end: real processes, real database, one clear line on errors."""

from __future__ import annotations

import json
import random
import socket
import subprocess
from datetime import date
from pathlib import Path

import httpx
import pytest

from felles.config import Settings
from felles.db import Database
from felles.registry.numbers import synthetic_pid
from tests.conftest import run_felles, serving

felles = run_felles


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    text = " ".join(result.stderr.split())
    for needle in needles:
        assert needle in text, result.stderr
    assert text.startswith("Error:"), result.stderr


def test_people_as_json_use_the_model_field_names(settings: Settings, db: Database) -> None:
    result = felles(settings, "registry", "people", "--limit", "5", "--json")
    assert result.returncode == 0, result.stderr
    people = json.loads(result.stdout)
    assert len(people) == 5
    assert {"pid", "given_name", "family_name", "birth_date", "municipality_number"} <= set(
        people[0]
    )


def test_reserved_people_and_one_person_in_full(settings: Settings, db: Database) -> None:
    reserved = json.loads(felles(settings, "registry", "people", "--reserved", "--json").stdout)
    assert reserved, "the demo country has people who said no to digital mail"
    pid = reserved[0]["pid"]
    shown = felles(settings, "registry", "person", pid, "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["person"]["pid"] == pid
    assert record["contact"]["reserved"] is True
    assert record["history"][0]["kind"] in ("birth", "immigration")
    text = felles(settings, "registry", "person", pid)
    assert "reserved against digital mail" in text.stdout


def test_organisations(settings: Settings, db: Database) -> None:
    result = felles(settings, "registry", "orgs", "--json", "--limit", "500")
    orgs = json.loads(result.stdout)
    assert {"orgnr", "name", "form", "industry_code"} <= set(orgs[0])
    assert any(o["form"] == "KOMM" for o in orgs)
    table = felles(settings, "registry", "orgs", "--limit", "3")
    assert "Organisation number" in table.stdout


@pytest.mark.parametrize("pid", ["12345678901", "0101", "abcdefghijk"])
def test_malformed_identity_number(settings: Settings, pid: str) -> None:
    result = felles(settings, "registry", "person", pid)
    assert result.returncode == 2
    assert_one_clear_line(result, "Invalid national identity number")


def test_unknown_person(settings: Settings, db: Database) -> None:
    unknown = "01810112345"

    unknown = synthetic_pid(date(1901, 1, 1), random.Random(1))
    result = felles(settings, "registry", "person", unknown)
    assert_one_clear_line(result, "No person with that national identity number")


def test_unreachable_database(settings: Settings) -> None:
    result = felles(
        settings,
        "registry",
        "people",
        FELLES_DATABASE_URL="postgresql+psycopg://felles:secret@127.0.0.1:1/nothing",
    )
    assert_one_clear_line(result, "Cannot reach the database", "FELLES_DATABASE_URL")
    assert "secret" not in result.stderr  # the password is never printed


def test_unusable_data_dir(settings: Settings, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = felles(settings, "registry", "people", FELLES_DATA_DIR=str(blocker / "var"))
    assert_one_clear_line(result, "not writable", "FELLES_DATA_DIR")


def test_read_only_data_dir(settings: Settings) -> None:
    # /proc is read-only for everyone, root included (a chmod'ed folder is not, for root).
    result = felles(settings, "registry", "people", FELLES_DATA_DIR="/proc/felles-var")
    assert_one_clear_line(result, "not writable", "FELLES_DATA_DIR")


def test_port_in_use(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = felles(settings, "serve", "--port", str(port))
    assert_one_clear_line(result, f"Port {port}", "already in use", "--port")


def test_demo_refuses_to_run_in_production(settings: Settings) -> None:
    result = felles(settings, "serve", "--demo", FELLES_ENV="prod")
    assert_one_clear_line(result, "FELLES_ENV=prod")
    seeded = felles(settings, "demo", "seed", "--persons", "5", FELLES_ENV="prod")
    assert_one_clear_line(seeded, "FELLES_ENV=prod")


def test_invalid_configuration(settings: Settings) -> None:
    result = felles(settings, "registry", "people", FELLES_ENV="staging")
    assert_one_clear_line(result, "configuration is not valid")


def test_db_upgrade_is_idempotent(settings: Settings, db: Database) -> None:
    result = felles(settings, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stderr


@pytest.mark.parametrize(("trusted", "believed"), [("127.0.0.1", True), ("", False)])
def test_serve_believes_forwarded_headers_only_from_trusted_proxies(
    settings: Settings, db: Database, trusted: str, believed: bool
) -> None:
    """FELLES_TRUSTED_PROXIES: a request that a trusted proxy says came over https gets
    HSTS; from anyone else the header is ignored."""
    with serving(settings, FELLES_TRUSTED_PROXIES=trusted) as base_url:
        response = httpx.get(
            f"{base_url}/.well-known/openid-configuration",
            headers={"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"},
            timeout=10,
        )
    assert response.status_code == 200
    assert ("strict-transport-security" in response.headers) is believed


def test_every_part_loads_when_asked_for() -> None:
    """The parts' commands are imported on first use: each must still be found."""
    from importlib import import_module

    import typer
    from typer.testing import CliRunner

    from felles.cli import PARTS, app

    runner = CliRunner()
    listed = runner.invoke(app, ["--help"])
    assert listed.exit_code == 0
    for name in PARTS:
        assert name in listed.output
        shown = runner.invoke(app, [name, "--help"])
        assert shown.exit_code == 0, shown.output
        module, attribute = PARTS[name]
        commands = typer.main.get_group(getattr(import_module(module), attribute)).commands
        assert commands and all(command in shown.output for command in commands)
