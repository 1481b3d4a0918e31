"""Whether a destination may get an input: its topics.yaml switch, and the Segment
`integrations` object (case-sensitive names "Mailmodo", "Mailjet", "CleverTap", "Segment";
`All` is the default, true)."""

from __future__ import annotations

from typing import Any, Mapping

from streamproc.core.records import INTEGRATION_NAMES
from streamproc.core.routing.config import RoutingConfig
from streamproc.core.routing.drops import DISABLED, INTEGRATIONS_OFF, Drop


def _switch(value: Any) -> bool:
    if isinstance(value, dict):  # destination-specific options: the destination is on
        return True
    return bool(value)


def enabled_for(integrations: Mapping[str, Any] | None, destination_name: str) -> bool:
    """True when a message with this `integrations` object may go to `destination_name`:
    its own entry when present (false turns it off, true or an options object turns it on),
    else `All` (default true). A differently cased name ("mailmodo") is not its entry."""
    if not integrations:
        return True
    value = integrations.get(destination_name)
    if value is None:
        value = integrations.get("All", True)
        if value is None:
            return True
    return _switch(value)


def gate(cfg: RoutingConfig, source: str, destination: str,
         integrations: Mapping[str, Any] | None) -> Drop | None:
    """The drop when `destination` may not get this input at all: switched off in
    topics.yaml (`disabled`), or turned off by the `integrations` object; None when it may."""
    if not cfg.is_enabled(destination):
        return Drop(source, destination, DISABLED)
    if not enabled_for(integrations, INTEGRATION_NAMES[destination]):
        return Drop(source, destination, INTEGRATIONS_OFF)
    return None
