"""Pure routing: (event, state) -> new state, sink records, internal messages and counted drops.
The users stage owns routes 1-7 (Segment in), the contacts stage routes 8-11."""

from streamproc.core.routing.config import RoutingConfig
from streamproc.core.routing.contacts import ContactResult, route_contact_event
from streamproc.core.routing.drops import REASONS, Drop
from streamproc.core.routing.integrations import enabled_for
from streamproc.core.routing.messages import ContactUpdate, MergeUser, decode, encode, key_for
from streamproc.core.routing.users import UserResult, route_user_event, sweep_pending

__all__ = [
    "ContactResult", "ContactUpdate", "Drop", "MergeUser", "REASONS", "RoutingConfig",
    "UserResult", "decode", "enabled_for", "encode", "key_for", "route_contact_event",
    "route_user_event", "sweep_pending",
]
