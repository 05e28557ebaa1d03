"""Telling a person by e-mail that their submission arrived (if the contact register has
their address). Sent after the receipt page is answered, so the receipt never waits on
the mail server; a failure is logged and the receipt stays in the inbox regardless."""

from __future__ import annotations

from typing import Any

from felles.config import Settings
from felles.db import Database
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


async def send_receipt_notice(db: Database, settings: Settings, submission_id: str) -> None:
    try:
        async with db.session() as session:
            submission = await session.get(Submission, submission_id)
            if submission is None:
                return
            contact = await registry.contact(session, submission.submitted_by, ACCESS)
            if contact is None or not contact.email:
                return
            definition = await catalogue.definition(
                session, submission.service_code, submission.service_version
            )
            lang = contact.language if contact.language in ("nb", "nn", "en") else "nb"
            agency = (await registry.get_agency(session, submission.owner_orgnr)).name(lang)
        gettext = translations(lang).gettext
        values: dict[str, Any] = {
            "service": definition.name(lang),
            "agency": agency,
            "reference": submission.reference,
            "link": f"{settings.base_url}/portal/submissions/{submission.id}/receipt",
        }
        await Notifier.from_environment(settings).send_email(
            contact.email, gettext(SUBJECT) % values, gettext(BODY) % values
        )
    except (NotificationError, registry.NotFound, catalogue.ServiceNotFound) as exc:
        log.warning("receipt notice not sent", reason=type(exc).__name__)
