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
UNKNOWN_USER = "unknown_user"  # track for a userId not identified (route 5) when its hold
#                                 expired (or holds are off)
UNSUPPORTED_TYPE = "unsupported_type"  # page, screen, group (route 6)
NOT_IDENTIFIED = "not_identified"  # Mailmodo activity for a contact not identified through
#                                   Segment is not sent to Segment (route 8), once its hold expired
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
    destination: str  # a destination slug (streamproc.core.records.DESTINATIONS)
    reason: str  # one of REASONS


# Holds (streamproc/core/routing/holds.py): an input whose decision waits for state another topic
# updates. The reason it waits for is the drop reason it gets if the hold expires.
HELD, RELEASED, EXPIRED, OVERFLOW = "held", "released", "expired", "overflow"
HOLD_OUTCOMES = (HELD, RELEASED, EXPIRED, OVERFLOW)
HOLD_REASONS = ((SOURCE_SEGMENT, UNKNOWN_USER), (SOURCE_MAILMODO, NOT_IDENTIFIED),
                (SOURCE_MAILMODO, NO_CLEVERTAP_ID), (SOURCE_MAILJET, NOT_IDENTIFIED))


class Hold(NamedTuple):
    """One hold event of an input: held, released (decided once the state arrived), expired
    (decided as without the state) or overflow (pushed out: too many held for its key)."""

    source: str  # one of SOURCES
    reason: str  # what it waits for, as the drop reason it gets without it
    outcome: str  # one of HOLD_OUTCOMES
