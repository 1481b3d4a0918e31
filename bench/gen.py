"""Deterministic, realistic raw input for the benchmarks: a population of users sending Segment
identify/track/page (identify first, then mostly tracks), Mailmodo and Mailjet activity for
their emails, a few CleverTap triggers and a few unparseable records. Same seed, same bytes.

Each generated record carries what the benchmarks need to check and time it: the input name,
key, value bytes, a reference id (found again in the sink records it causes) and the number of
sink records streamproc must (min) / may (max) produce for it."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

import orjson

BASE = datetime(2026, 11, 20, tzinfo=timezone.utc)
BASE_TS = BASE.timestamp()

TRACK_EVENTS = ("Product Viewed", "Product Added", "Checkout Started", "Order Completed",
                "Page Scrolled", "Search Performed", "Video Played", "Signed In")
MAILMODO_EVENTS = ("sent", "opened", "opened", "clicked", "clicked", "form_submitted",
                   "bounced", "unsubscribed")
MAILJET_EVENTS = ("sent", "open", "open", "click", "bounce", "spam", "unsub", "blocked")
UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
      "Version/17.2 Safari/605.1.15")
MJ_BASE_ID = 19421777835146490  # above 2**53, as Mailjet's are


@dataclass(slots=True)
class Raw:
    input: str  # segment | mailmodo | mailjet | clevertap
    key: bytes | None
    value: bytes
    ref: str | None  # id found again in the sink records (source.message_id or data.ref)
    sinks_min: int  # sink records streamproc must produce for it
    sinks_max: int  # ... may produce (Mailmodo -> Segment races the identify's contact update)
    kind: str  # identify, track, page, mailmodo, mailjet, clevertap, bad


def _iso(ts: float) -> str:
    ms = int(round(ts * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class Population:
    """Users u-<n> with one email each; half of them have a CleverTap ID."""

    def __init__(self, users: int, seed: int) -> None:
        self.users = users
        self.rng = random.Random(seed)
        self.identified: set[int] = set()

    @staticmethod
    def user_id(u: int) -> str:
        return f"u-{u:08d}"

    @staticmethod
    def email(u: int) -> str:
        return f"Person.{u:08d}@Example.com"  # mixed case: normalised by streamproc

    @staticmethod
    def clevertap_id(u: int) -> str | None:
        return f"__ct{u:08d}" if u % 2 == 0 else None


def identify(n: int, u: int, ts: float) -> Raw:
    uid = Population.user_id(u)
    mid = f"m-{n:09d}"
    body = {
        "type": "identify", "userId": uid, "anonymousId": f"anon-{u:08d}", "messageId": mid,
        "timestamp": _iso(ts), "sentAt": _iso(ts + 0.2),
        "traits": {"email": Population.email(u), "firstName": f"First{u % 997}",
                   "lastName": f"Last{u % 991}", "plan": ("free", "pro", "team")[u % 3],
                   "createdAt": _iso(BASE_TS - 86400 * (u % 700)),
                   "address": {"city": "London", "country": "UK"}, "company": {"name": f"Co {u % 50}"},
                   "logins": u % 40},
        "context": {"library": {"name": "analytics.js", "version": "4.1.0"}, "ip": "203.0.113.7",
                    "locale": "en-GB", "userAgent": UA},
        "integrations": {},
    }
    return Raw("segment", uid.encode(), orjson.dumps(body), mid, 2, 2, "identify")


def track(n: int, u: int, ts: float, rng: random.Random, known: bool) -> Raw:
    uid = Population.user_id(u)
    mid = f"m-{n:09d}"
    sku = rng.randrange(10000)
    body = {
        "type": "track", "userId": uid, "anonymousId": f"anon-{u:08d}", "messageId": mid,
        "timestamp": _iso(ts), "sentAt": _iso(ts + 0.2),
        "event": TRACK_EVENTS[rng.randrange(len(TRACK_EVENTS))],
        "properties": {"product_id": f"p-{sku}", "sku": f"SKU-{sku:05d}", "category": "shoes",
                       "name": f"Runner {sku % 90}", "price": round(10 + sku / 97, 2),
                       "currency": "EUR", "position": sku % 12,
                       "url": f"https://shop.example.com/p/{sku}"},
        "context": {"library": {"name": "analytics.js", "version": "4.1.0"}, "ip": "203.0.113.7",
                    "locale": "en-GB", "userAgent": UA,
                    "page": {"path": f"/p/{sku}", "referrer": "https://www.google.com/",
                             "title": f"Runner {sku % 90}", "url": f"https://shop.example.com/p/{sku}"}},
        "integrations": {},
    }
    n_out = 1 if known else 0
    return Raw("segment", uid.encode(), orjson.dumps(body), mid, n_out, n_out, "track")


def page(n: int, u: int, ts: float) -> Raw:
    uid = Population.user_id(u)
    mid = f"m-{n:09d}"
    body = {"type": "page", "userId": uid, "messageId": mid, "timestamp": _iso(ts),
            "name": "Pricing", "properties": {"path": "/pricing", "url": "https://shop.example.com/pricing"},
            "context": {"ip": "203.0.113.7", "userAgent": UA}}
    return Raw("segment", uid.encode(), orjson.dumps(body), mid, 0, 0, "page")


def mailmodo(n: int, u: int, ts: float, rng: random.Random) -> Raw:
    event = MAILMODO_EVENTS[rng.randrange(len(MAILMODO_EVENTS))]
    email = Population.email(u).lower()
    ref = f"mm-{n:09d}"
    body: dict = {"event": event, "email": email, "timestamp": int(ts), "event_id": ref,
                  "email_id": f"e-{n}", "campaign_id": f"cmp-{u % 20}",
                  "campaign_name": f"Campaign {u % 20}", "email_subject": "Your weekly picks",
                  "campaign_type": "TRIGGERED", "template_name": "Weekly Picks",
                  "email_type": "campaign"}
    if event == "clicked":
        body["link_url"] = "https://shop.example.com/picks"
        body["link_id"] = "l-1"
    if event == "form_submitted":
        body.update(form_id="f-1", form_name="NPS", submission_type="amp",
                    form_responses={"score": rng.randrange(11)})
    ct = Population.clevertap_id(u)
    if ct:
        body["clevertap_id"] = ct
    ct_out = 0 if (ct is None or event == "sent") else (2 if event == "form_submitted" else 1)
    # Segment track only if the contact's identify update reached the contacts table first.
    return Raw("mailmodo", email.encode(), orjson.dumps(body), ref, ct_out, ct_out + 1, "mailmodo")


def mailjet(n: int, u: int, ts: float, rng: random.Random) -> Raw:
    email = Population.email(u).lower()
    items = []
    routed = 0
    for i in range(2 if rng.random() < 0.1 else 1):
        event = MAILJET_EVENTS[rng.randrange(len(MAILJET_EVENTS))]
        items.append({"event": event, "time": int(ts) + i, "email": email,
                      "MessageID": MJ_BASE_ID + n * 2 + i, "mj_campaign_id": 7919,
                      "mj_contact_id": u, "customcampaign": "weekly", "CustomID": "",
                      "Payload": "", "ip": "198.51.100.4", "geo": "GB", "agent": UA})
        routed += event != "blocked"
    value = items[0] if len(items) == 1 else items
    ref = str(MJ_BASE_ID + n * 2)  # event_id is "<MessageID>:<event>:<time>"
    return Raw("mailjet", email.encode(), orjson.dumps(value), ref, routed, routed, "mailjet")


def clevertap(n: int, u: int, rng: random.Random) -> Raw:
    email = Population.email(u).lower()
    ref = f"ct-{n:09d}"
    body = {"email": email, "clevertap_id": f"__ct{u:08d}", "campaign_id": "cmp-ct-1",
            "data": {"first_name": f"First{u % 997}", "ref": ref}}
    return Raw("clevertap", email.encode(), orjson.dumps(body), ref, 1, 1, "clevertap")


def mixed(n: int, *, users: int | None = None, seed: int = 7, start_index: int = 0) -> list[Raw]:
    """n mixed raw records. users defaults to n // 20 (about 20 events per user). The mix:
    ~1 identify per user (before any of that user's other events), tracks (~60 %),
    Mailmodo activity (~14 %), Mailjet (~8 %), pages (3 %), CleverTap triggers (2 %),
    tracks of never-identified users (2 %), records that are not JSON (0.2 %)."""
    users = users or max(10, n // 20)
    rng = random.Random(seed)
    identified: set[int] = set()
    out: list[Raw] = []
    i = start_index
    while len(out) < n:
        ts = BASE_TS + i * 0.01
        u = rng.randrange(users)
        if u not in identified:
            identified.add(u)
            out.append(identify(i, u, ts))
            i += 1
            continue
        r = rng.random()
        if r < 0.60:
            out.append(track(i, u, ts, rng, known=True))
        elif r < 0.74:
            out.append(mailmodo(i, u, ts, rng))
        elif r < 0.82:
            out.append(mailjet(i, u, ts, rng))
        elif r < 0.85:
            out.append(page(i, u, ts))
        elif r < 0.87:
            out.append(clevertap(i, u, rng))
        elif r < 0.89:
            out.append(track(i, users + u, ts, rng, known=False))  # never identified
        elif r < 0.892:
            out.append(Raw("segment", b"poison", b"{not json", None, 0, 0, "bad"))
        else:
            out.append(track(i, u, ts, rng, known=True))
        i += 1
    return out


def identifies(n: int, *, start: int = 0) -> Iterator[Raw]:
    """n identifies with emails for n distinct users (state benchmark), generated lazily."""
    return (identify(start + u, start + u, BASE_TS + u * 0.001) for u in range(n))


def summary(records: list[Raw]) -> dict:
    kinds: dict[str, int] = {}
    for r in records:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    return {"records": len(records), "bytes": sum(len(r.value) for r in records),
            "sinks_min": sum(r.sinks_min for r in records),
            "sinks_max": sum(r.sinks_max for r in records), "kinds": kinds}
