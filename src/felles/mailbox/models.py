"""The mailbox's tables: the digital mailbox providers and their encryption certificates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from felles.db import Base


class MailboxProvider(Base):
    """A digital mailbox provider (Felles' own, Digipost, e-Boks): senders encrypt each
    letter to the provider's certificate, so only the provider can read it."""

    __tablename__ = "mailbox_provider"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    certificate_pem: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
