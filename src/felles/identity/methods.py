"""Login methods are pluggable: each declares its name, the level it gives and its page.

A method module calls `register(...)` at import; `felles.identity.pages` shows the
methods that reach the level a request needs, and each method finishes with
`pages.finish_login`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from felles.config import Settings
from felles.identity import levels


@dataclass(frozen=True, slots=True)
class LoginMethod:
    name: str
    label: str  # English source text; translated when shown
    hint: str
    path: str  # its first page; gets ?auth=<pending id>
    max_acr: str  # the highest level it can give
    available: Callable[[Settings], bool] = lambda _settings: True
    order: int = 100


_METHODS: dict[str, LoginMethod] = {}


def register(method: LoginMethod) -> None:
    _METHODS[method.name] = method


def methods_for(settings: Settings, wanted_acr: str) -> list[LoginMethod]:
    """The methods on offer for a request that needs at least `wanted_acr`."""
    return sorted(
        (
            m
            for m in _METHODS.values()
            if m.available(settings) and levels.rank(m.max_acr) >= levels.rank(wanted_acr)
        ),
        key=lambda m: (m.order, m.name),
    )


def N_(message: str) -> str:
    """Marks a string for translation; it is translated when the page is rendered."""
    return message


register(
    LoginMethod(
        name="testid",
        label=N_("TestID"),
        hint=N_("Made-up test people. Only in test environments."),
        path="/login/testid",
        max_acr=levels.HIGH,
        available=lambda settings: settings.demo_allowed(),
        order=900,
    )
)
