"""The name caches of the parsers (trait-name folding, Mailmodo event names) are bounded in
bytes, not only in entries: a name longer than any real one is answered without being kept.
Counted in entries alone, 999 Mailmodo records with unknown 1 MB event names kept ~1 GB alive,
and 9,999 Segment tracks with one 30 kB context trait name ~600 MB more."""

from __future__ import annotations

from streamproc.core.events import mailmodo, traits
from streamproc.core.events.mailmodo import canonical_event
from streamproc.core.events.traits import reserved_trait, reserved_traits


def _kept_chars(cache: dict) -> int:
    return sum(len(k) + (len(v) if isinstance(v, str) else 0) for k, v in cache.items())


def test_long_trait_names_are_folded_but_not_kept() -> None:
    before = _kept_chars(traits._FOLDED)
    for i in range(20):
        long = f"{i:02d}" + "Y_" * 5_000
        assert reserved_traits({long: 1}) == {long: 1}
        assert reserved_trait({long: 1}, "email") is None
    # a variant spelling of a reserved trait, however long its separators run, still folds
    spelled = "E" + "_" * 10_000 + "mail"
    assert reserved_trait({spelled: "a@example.com"}, "email") == "a@example.com"
    assert _kept_chars(traits._FOLDED) - before < 10_000


def test_long_mailmodo_event_names_are_mapped_but_not_kept() -> None:
    before = _kept_chars(mailmodo._CANONICAL)
    for i in range(20):
        assert canonical_event(f"{i:02d}" + "x" * 10_000) is None
    assert canonical_event("Email" + " " * 10_000 + "Opened") == "opened"
    assert _kept_chars(mailmodo._CANONICAL) - before < 10_000
    assert canonical_event("Email Opened") == "opened"  # short names: cached as before
    assert "Email Opened" in mailmodo._CANONICAL
