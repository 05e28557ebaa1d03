"""Settings: every knob is an environment variable named FELLES_*."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    dev = "dev"
    test = "test"
    prod = "prod"


class Settings(BaseSettings):
    """Runtime configuration, read from the environment (and `.env` if present)."""

    model_config = SettingsConfigDict(env_prefix="FELLES_", env_file=".env", extra="ignore")

    env: Environment = Environment.dev
    data_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None, description="Defaults to SQLite in the data dir."
    )
    base_url: str = "http://127.0.0.1:8000"
    redis_url: str | None = None
    db_connections: int = Field(
        default=20,
        ge=2,
        le=500,
        description="PostgreSQL connections per worker process for each of its two pools.",
    )
    log_level: str = "INFO"
    demo_persons: int = Field(default=2000, ge=1, le=6_000_000)
    demo_seed: int = 2016
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    sso_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    sso_absolute_minutes: int = Field(default=120, ge=1, le=7 * 24 * 60)
    # Reverse proxies whose X-Forwarded-For/-Proto are believed (comma-separated addresses
    # or networks, "*" for any, "" for none): they decide the client address that rate
    # limits count by, and whether a request came over https.
    trusted_proxies: str = "127.0.0.1"
    # How often each server process deletes expired codes, sessions, tokens ...; 0: never.
    purge_minutes: float = Field(default=10, ge=0, le=24 * 60)
    # Each server process fans out and delivers webhooks in the background; off when
    # separate `felles worker` processes do it.
    events_dispatch: bool = True
    # In production webhooks are delivered to public addresses only; true lets them go to
    # private networks too (agencies' receivers inside a closed government network).
    webhooks_private: bool = False
    # How often each server process renders receipt PDFs still missing; 0: never (when
    # separate `felles worker` processes do it).
    receipts_seconds: float = Field(default=2.0, ge=0, le=3600)
    events_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # How often each server process releases committed mail batches and sends the
    # notifications due; 0: never (when separate `felles worker` processes do it).
    mailbox_seconds: float = Field(default=2.0, ge=0, le=3600)
    # How long events stay in the pull feed (GET .../events) after they happened.
    events_keep_days: int = Field(default=30, ge=3, le=3650)
    # Virus scanning of uploads: "eicar" (refuses only the EICAR test file: dev and
    # demo), "clamd://host:port" (ClamAV's daemon), or "none".
    virus_scanner: str = Field(default="eicar", pattern=r"^(eicar|none|clamd://[^/:]+:[0-9]+)$")
    # E-mail and SMS to people (login codes, mail notifications, receipts). A channel left
    # unset writes each message to the data dir's outbox/ outside production, and is an
    # error in production. The URL and the token are secrets: never shown or logged.
    smtp_url: SecretStr | None = Field(
        default=None,
        description="smtp://host:25, smtp+starttls://user:pass@host:587 or smtps://host:465",
    )
    smtp_from: str = Field(default="no-reply@localhost", description="The sender of e-mail.")
    sms_gateway_url: str | None = Field(
        default=None, description='An HTTP endpoint taking POST {"to": ..., "text": ...}.'
    )
    sms_gateway_token: SecretStr | None = Field(
        default=None, description="Sent to the SMS gateway as `Authorization: Bearer ...`."
    )

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL, with SQLite in the data dir unless told otherwise."""
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'felles.db'}"
        return to_async_url(url)

    @property
    def issuer(self) -> str:
        """The OpenID Connect issuer: the public base URL."""
        return self.base_url

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    def demo_allowed(self) -> bool:
        """Demo and test-only features (seeded data, TestID) never run in production."""
        return self.env is not Environment.prod


def to_async_url(url: str) -> str:
    """Accept the URLs people write and give the async driver SQLAlchemy needs."""
    if url.startswith("sqlite:///") or url.startswith("sqlite+pysqlite:///"):
        return "sqlite+aiosqlite:///" + url.split(":///", 1)[1]
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


@lru_cache
def get_settings() -> Settings:
    return Settings()
