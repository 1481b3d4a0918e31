"""build_client: base URL joining (a path prefix kept), auth headers, JSON via orjson, timeout
and pool size."""

from __future__ import annotations

import httpx
import orjson
import pytest

from delivery_fakes import destination, settings
from streamproc.delivery.client import build_client, send
from streamproc.destinations.request import HttpRequest


async def test_request_goes_to_base_path_with_auth_and_json():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    s = settings()
    async with build_client(destination(), s, transport=httpx.MockTransport(handler)) as client:
        body = {"n": 2 ** 60 + 1, "text": "é"}
        await send(client, HttpRequest("POST", "/send", body, ["r1"], "send"))
    request = seen[0]
    assert str(request.url) == "https://api.fake.test/v1/send"
    assert request.headers["X-Api-Key"] == "fake-key"
    assert request.headers["Content-Type"] == "application/json"
    assert orjson.loads(request.content) == body


async def test_auth_headers_may_set_the_content_type():
    seen = []
    dest = destination()
    dest.auth = lambda s: {"Content-Type": "application/json; charset=utf-8"}
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200))
    async with build_client(dest, settings(), transport=transport) as client:
        await send(client, HttpRequest("POST", "/x", [1], [], "x"))
    assert seen[0].headers["Content-Type"] == "application/json; charset=utf-8"


async def test_timeout_and_pool_follow_the_delivery_settings():
    s = settings(concurrency=7, timeout_s=3.0)
    async with build_client(destination(), s) as client:
        assert client.timeout.read == 3.0 and client.timeout.connect == 3.0
        pool = client._transport._pool  # noqa: SLF001 - no public accessor for the limits
        assert pool._max_connections == 7 and pool._max_keepalive_connections == 7


@pytest.mark.parametrize("slug,path", [("mailmodo", "/api/v1"), ("segment", ""),
                                       ("clevertap", ""), ("mailjet", "/v3/REST")])
@pytest.mark.parametrize("base", ["http://127.0.0.1:8080", "http://127.0.0.1:8080/"])
async def test_the_client_adds_the_destination_api_path_to_the_base_url(slug, path, base):
    from streamproc.config.settings import load_settings
    from streamproc.destinations.registry import destination as real_destination

    s = load_settings({f"STREAMPROC_{slug.upper()}_BASE_URL": base}).destination(slug)
    async with build_client(real_destination(slug), s) as client:
        url = client.build_request("POST", "/endpoint").url
    assert str(url) == f"http://127.0.0.1:8080{path}/endpoint"


async def test_an_old_base_url_with_the_api_path_reaches_the_same_url():
    from streamproc.config.settings import load_settings
    from streamproc.destinations import mailjet, mailmodo

    s = load_settings({"STREAMPROC_MAILMODO_BASE_URL": "https://mm.test/api/v1",
                       "STREAMPROC_MAILJET_BASE_URL": "https://mj.test/v3/REST"})
    async with build_client(mailmodo, s.mailmodo) as mm, build_client(mailjet, s.mailjet) as mj:
        assert str(mm.build_request("POST", "/addEvent").url) == "https://mm.test/api/v1/addEvent"
        assert str(mj.build_request("POST", "/contactmetadata").url) == \
            "https://mj.test/v3/REST/contactmetadata"


@pytest.mark.parametrize("slug,path,endpoint", [
    ("mailmodo", "/api/v1", "/addToList/batch"), ("segment", "", "/v1/batch"),
    ("clevertap", "", "/1/upload"), ("mailjet", "/v3/REST", "/contactmetadata")])
@pytest.mark.parametrize("base", ["https://proxy.test/staging/vendor",
                                  "https://proxy.test/staging/vendor/"])
async def test_a_base_url_with_a_path_prefix_keeps_it_before_the_api_path(slug, path, endpoint,
                                                                        base):
    """A staging or mock API behind a reverse proxy prefix: requests go below the prefix."""
    from streamproc.config.settings import load_settings
    from streamproc.destinations.registry import destination as real_destination

    seen = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200))
    s = load_settings({f"STREAMPROC_{slug.upper()}_BASE_URL": base}).destination(slug)
    async with build_client(real_destination(slug), s, transport=transport) as client:
        await send(client, HttpRequest("POST", endpoint, {}, [], "x"))
    assert str(seen[0].url) == f"https://proxy.test/staging/vendor{path}{endpoint}"


async def test_an_old_base_url_behind_a_prefix_keeps_the_prefix():
    from streamproc.config.settings import load_settings
    from streamproc.destinations import mailjet, mailmodo

    s = load_settings({"STREAMPROC_MAILMODO_BASE_URL": "https://proxy.test/mailmodo/api/v1",
                       "STREAMPROC_MAILJET_BASE_URL": "https://proxy.test/mailjet/v3"})
    async with build_client(mailmodo, s.mailmodo) as mm, build_client(mailjet, s.mailjet) as mj:
        assert str(mm.build_request("POST", "/addEvent").url) == \
            "https://proxy.test/mailmodo/api/v1/addEvent"
        assert str(mj.build_request("POST", "/contactmetadata").url) == \
            "https://proxy.test/mailjet/v3/REST/contactmetadata"
