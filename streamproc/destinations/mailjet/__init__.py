"""Mailjet destination: contacts in the configured list with their properties (managecontact),
defining missing properties through /contactmetadata. Auth is HTTP Basic (API key, secret)."""

from __future__ import annotations

import base64

from streamproc.destinations.mailjet.mapping import (build_requests, contact_name,
                                                     contact_upsert_request,
                                                     contactmetadata_request, mailjet_data_type,
                                                     property_definition_requests, property_name,
                                                     traits_to_properties)
from streamproc.destinations.mailjet.responses import (interpret, property_already_defined, repair,
                                                       undefined_properties)
from streamproc.config.settings import API_PATHS, MailjetSettings
from streamproc.core.records import MAILJET

NAME = MAILJET
API_PATH = API_PATHS[NAME]  # the client adds it to the base URL (scheme://host[:port][/prefix])
INTEGRATION = "Mailjet"
MAX_RECORDS_PER_REQUEST = 1


def auth(settings: MailjetSettings) -> dict[str, str]:
    """Headers sent with every Mailjet request."""
    token = base64.b64encode(f"{settings.api_key}:{settings.api_secret.get()}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


__all__ = ["NAME", "API_PATH", "INTEGRATION", "MAX_RECORDS_PER_REQUEST", "auth", "build_requests",
           "contact_name", "contact_upsert_request", "contactmetadata_request", "interpret",
           "mailjet_data_type", "property_already_defined", "property_definition_requests",
           "property_name", "repair", "traits_to_properties", "undefined_properties"]
