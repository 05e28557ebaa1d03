"""Webhooks cannot be aimed at the servers inside Felles' own network: in production an
endpoint must be a public address, at subscription and again at every delivery (a name
is resolved each time, so one that later points inside is caught too)."""

from __future__ import annotations

from typing import Any

import pytest

from felles.db import Database
from felles.events.webhooks import BadEndpoint, PublicAddresses, check_endpoint
from tests.events.conftest import Receiver, emit_many
from tests.events.test_delivery import delivery


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.5/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
    ],
)
def test_private_address_literals_are_refused_in_production(url: str) -> None:
    with pytest.raises(BadEndpoint):
        check_endpoint(url, local_http=False, public_only=True)
    assert check_endpoint(url, local_http=False) == url  # outside production: allowed


def test_public_addresses_and_names_pass_the_subscription_check() -> None:
    for url in ("https://93.184.216.34/hook", "https://receiver.example.no/hook"):
        assert check_endpoint(url, local_http=False, public_only=True) == url


async def test_names_are_resolved_before_delivery() -> None:
    addresses = PublicAddresses()
    assert not await addresses.allow("https://localhost/hook")
    assert not await addresses.allow("https://127.0.0.1:8443/hook")
    assert not await addresses.allow("https://no-such-host.invalid/hook")
    assert await addresses.allow("https://93.184.216.34/hook")


async def test_the_dispatcher_refuses_a_receiver_on_a_private_address(
    db: Database, org: str, receiver: Receiver, subscribe: Any, dispatchers: Any
) -> None:
    sub = await subscribe(org, receiver)  # on 127.0.0.1: fine outside production
    [event_id] = await emit_many(db, org, 1)
    await dispatchers(public_only=True).run_once()
    assert receiver.received == []
    tried = await delivery(db, sub, event_id)
    assert tried.status == "pending" and tried.attempts == 1
    assert tried.last_error == "not a public address"
