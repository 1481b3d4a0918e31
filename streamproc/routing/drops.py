"""Drops: an input that a destination does not get, counted by (source, destination, reason).
Every reason code streamproc uses is defined and documented here, in one place."""

from __future__ import annotations

from typing import NamedTuple

# Sources (the input an event came in on).
SOURCE_SEGMENT = "segment"
SOURCE_MAILMODO = "mailmodo"
SOURCE_MAILJET = "mailjet"
SOURCE_CLEVERTAP = "clevertap"
SOURCES = (SOURCE_SEGMENT, SOURCE_MAILMODO, SOURCE_MAILJET, SOURCE_CLEVERTAP)

# Reasons. Checked in this order per (input, destination): disabled, integrations_off, then
# the content reasons below them.
DISABLED = "disabled"  # the destination is switched off in topics.yaml
INTEGRATIONS_OFF = "integrations_off"  # the message's `integrations` object turns it off
MISSING_EMAIL = "missing_email"  # identify with no email (route 2)
UNKNOWN_USER = "unknown_user"  # track for a userId never identified (route 5), or held
#                                 past the grace window
UNSUPPORTED_TYPE = "unsupported_type"  # page, screen, group (route 6)
NOT_IDENTIFIED = "not_identified"  # Mailmodo activity for a contact never identified through
#                                   Segment is not sent to Segment (route 8)
UNSUPPORTED_EVENT = "unsupported_event"  # an event this destination has no name for (Mailmodo
#                                         `sent` has no CleverTap event, route 9)
NO_CLEVERTAP_ID = "no_clevertap_id"  # activity for a contact without a CleverTap ID (route 9)
MISSING_TEMPLATE_NAME = "missing_template_name"  # form submission with neither template_name
#                                   nor form_name: no `MM <Template Name> Form Submitted` event
BLOCKED = "blocked"  # Mailjet `blocked` while Email Blocked is not enabled (route 11)

REASONS = (DISABLED, INTEGRATIONS_OFF, MISSING_EMAIL, UNKNOWN_USER, UNSUPPORTED_TYPE,
           NOT_IDENTIFIED, UNSUPPORTED_EVENT, NO_CLEVERTAP_ID, MISSING_TEMPLATE_NAME, BLOCKED)


class Drop(NamedTuple):
    source: str  # one of SOURCES
    destination: str  # a destination slug (streamproc.records.DESTINATIONS)
    reason: str  # one of REASONS
