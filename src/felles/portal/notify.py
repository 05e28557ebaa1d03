"""Telling a person by e-mail that their submission arrived (if the contact register has
their address). The receipt worker writes these for each batch it renders, so the
receipt page never waits on the mail server; the e-mail says who received what, never
what was sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from felles.config import Settings
from felles.notifications.service import NotificationError, Notifier
from felles.portal import catalogue
from felles.portal.models import Submission
from felles.registry import service as registry
from felles.web.i18n import translations
from felles.web.observability import log

ACCESS = registry.Access(accessed_by="felles-portal", purpose="receipt notification")


def N_(message: str) -> str:
    return message


SUBJECT = N_("Receipt: %(service)s")
BODY = N_(
    "You have sent “%(service)s” to %(agency)s.\n\n"
    "Reference number: %(reference)s\n\n"
    "Log in to the portal to see the receipt and your answers: %(link)s\n\n"
    "This e-mail says only that something arrived. It never contains what you sent."
)


@dataclass(frozen=True, slots=True)
class Notice:
    to: str
    subject: str
    text: str
    reference: str


async def receipt_notices(
    session: AsyncSession, submissions: list[Submission], settings: Settings
) -> list[Notice]:
    """The e-mails for these submissions' senders who have an address (looked up in one
    go, and recorded as the portal's lookups)."""
    contacts = await registry.contacts(session, [s.submitted_by for s in submissions], ACCESS)
    agencies: dict[tuple[str, str], str] = {}
    notices = []
    for submission in submissions:
        contact = contacts.get(submission.submitted_by)
        if contact is None or not contact.email:
            continue
        lang = contact.language if contact.language in ("nb", "nn", "en") else "nb"
        definition = await catalogue.definition(
            session, submission.service_code, submission.service_version
        )
        key = (submission.owner_orgnr, lang)
        if key not in agencies:
            agencies[key] = await registry.agency_name(session, key[0], lang)
        gettext = translations(lang).gettext
        values: dict[str, Any] = {
            "service": definition.name(lang),
            "agency": agencies[key],
            "reference": submission.reference,
            "link": f"{settings.base_url}/portal/submissions/{submission.id}/receipt",
        }
        notices.append(
            Notice(
                contact.email,
                gettext(SUBJECT) % values,
                gettext(BODY) % values,
                submission.reference,
            )
        )
    return notices


async def send_notices(notices: list[Notice], settings: Settings) -> None:
    """Hand the e-mails over; one that fails is logged (by reference) and the rest go."""
    if not notices:
        return
    notifier = Notifier.from_settings(settings)
    for notice in notices:
        try:
            await notifier.send_email(notice.to, notice.subject, notice.text)
        except NotificationError as exc:
            log.warning("receipt notice not sent", reference=notice.reference, reason=str(exc))
