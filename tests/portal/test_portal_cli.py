"""`felles portal ...` as an operator runs it: publishing definitions (a broken one is
refused with every problem listed), the catalogue, and people to try the portal as."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from felles.config import Settings
from felles.db import Database
from felles.portal.demo import EXAMPLES
from tests.conftest import run_felles


def test_publish_lists_every_problem(settings: Settings, db: Database, tmp_path: Path) -> None:
    document = yaml.safe_load((EXAMPLES / "kindergarten.yaml").read_text("utf-8"))
    document["code"] = "broken-service"
    document["pages"][0]["questions"][0]["field"] = "no_such_field"
    document["prefill"].append({"field": "first_choice", "source": "person.shoe_size"})
    del document["name"]["nn"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
    result = run_felles(settings, "portal", "publish", str(broken))
    assert result.returncode == 1
    assert "name/nn" in result.stderr, result.stderr
    del document["prefill"][-1]
    document["name"]["nn"] = "Søknad"
    broken.write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
    again = run_felles(settings, "portal", "publish", str(broken))
    assert again.returncode == 1
    assert "no_such_field" in again.stderr and "'child' is required" in again.stderr
    assert "Traceback" not in again.stderr


def test_publish_a_new_version_and_find_it(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    document = yaml.safe_load((EXAMPLES / "change-of-address.yaml").read_text("utf-8"))
    document["code"] = "change-of-address-cli"
    document["keywords"] = ["flyttemelding-cli"]
    path = tmp_path / "service.json"
    path.write_text(json.dumps(document), "utf-8")
    first = run_felles(settings, "portal", "publish", str(path))
    assert first.returncode == 0 and "version 1: published" in first.stderr
    same = run_felles(settings, "portal", "publish", str(path))
    assert same.returncode == 0 and "unchanged" in same.stderr
    document["description"]["en"] = "Changed."
    path.write_text(json.dumps(document), "utf-8")
    changed = run_felles(settings, "portal", "publish", str(path))
    assert changed.returncode == 1 and "publish a new version" in changed.stderr
    document["version"] = 2
    path.write_text(json.dumps(document), "utf-8")
    assert run_felles(settings, "portal", "publish", str(path)).returncode == 0
    found = run_felles(settings, "portal", "services", "flyttemelding-cli", "--json")
    assert [(s["code"], s["version"]) for s in json.loads(found.stdout)] == [
        ("change-of-address-cli", 2)
    ]


def test_demo_people(settings: Settings, db: Database) -> None:
    result = run_felles(settings, "portal", "demo-people", "--json")
    assert result.returncode == 0, result.stderr
    people = json.loads(result.stdout)
    assert any(p["try"] == "kindergarten-place" for p in people)
    assert any(p.get("role", "").startswith("DAGL") for p in people)
