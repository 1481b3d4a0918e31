"""Mailjet mapping and response reading: fixture cases plus property definitions
(/contactmetadata) and the undefined-property answer."""

from __future__ import annotations

import base64
import json

import pytest

from destination_cases import record, run_mapping_case, run_response_case
from streamproc.destinations import mailjet
from streamproc.destinations.mailjet import (contactmetadata_request, property_already_defined,
                                             property_definition_requests, property_name,
                                             undefined_properties)
from streamproc.config.settings import MailjetSettings, Secret
from streamproc.core.errors import ConfigError

SLUG = "mailjet"

DOCUMENTED_ERROR = {  # Mailjet's documented managecontact error response
    "ErrorInfo": {"Properties": [{"property1": "Property not defined"},
                                 {"propertyN": "Property type does not match definition"}]},
    "ErrorMessage": "Object properties invalid", "StatusCode": 400}


def test_mapping_case(mapping_case):
    run_mapping_case(SLUG, mapping_case)


def test_response_case(response_case):
    run_response_case(SLUG, response_case)


@pytest.mark.parametrize("value, data_type", [
    (True, "bool"), (False, "bool"), (0, "int"), (36, "int"), (9.5, "float"),
    ("2024-01-02T03:04:05Z", "datetime"), ("2024-01-02T03:04:05.123+02:00", "datetime"),
    ("2024-01-02", "str"), ("pro", "str"), ("", "str"), ('["a"]', "str")])
def test_contactmetadata_request_infers_the_type(value, data_type):
    request = contactmetadata_request("plan", value)
    assert (request.method, request.path) == ("POST", "/contactmetadata")
    assert request.body == {"Datatype": data_type, "Name": "plan", "NameSpace": "static"}
    assert request.record_ids == []


def test_undefined_properties_reads_the_documented_error():
    assert undefined_properties(json.dumps(DOCUMENTED_ERROR).encode()) == ["property1"]


@pytest.mark.parametrize("body, sent, expected", [
    (b'{"ErrorInfo": "", "ErrorMessage": "Object properties invalid", "StatusCode": 400}',
     ["a", "b"], ["a", "b"]),
    (b'{"ErrorInfo": "", "ErrorMessage": "Object properties invalid", "StatusCode": 400}',
     None, []),
    (b'{"ErrorInfo": {"Properties": {"plan": "Property not defined"}}, "ErrorMessage": "x"}',
     None, ["plan"]),
    (b'{"ErrorInfo": "", "ErrorMessage": "Invalid email address", "StatusCode": 400}', ["a"], None),
    (b"<html>Bad Request</html>", ["a"], None),
    (b"", ["a"], None),
    (b"Object properties invalid", ["a"], ["a"]),
])
def test_undefined_properties_is_defensive(body, sent, expected):
    assert undefined_properties(body, sent) == expected


def test_property_definition_requests_use_the_sent_values():
    request = mailjet.contact_upsert_request(
        record({"id": "j1", "destination": "mailjet", "op": "contact_upsert", "key": "a",
                "payload": {"email": "a@example.com", "traits": {"vip": True, "age": 3}}}),
        MailjetSettings(list_id="77"))
    defs = property_definition_requests(request, ["vip", "age", "unknown"])
    assert [d.body["Datatype"] for d in defs] == ["bool", "int", "str"]


def test_property_already_defined():
    body = b'{"ErrorInfo": "", "ErrorMessage": "MJ18 A ContactMetadata resource with value ' \
           b'\\"plan\\" for Name already exists.", "StatusCode": 400}'
    assert property_already_defined(400, body)
    assert not property_already_defined(400, b'{"ErrorMessage": "Invalid datatype"}')
    assert not property_already_defined(201, b"")


@pytest.mark.parametrize("key, name", [("firstName", "first_name"), ("postalCode", "postal_code"),
                                       ("Plan Tier", "plan_tier"), ("HTMLBody", "html_body"),
                                       ("already_snake", "already_snake"), ("a.b", "a_b")])
def test_property_name(key, name):
    assert property_name(key) == name


def test_missing_list_id_is_a_config_error():
    rec = record({"id": "j1", "destination": "mailjet", "op": "contact_upsert", "key": "a",
                  "payload": {"email": "a@example.com", "traits": {}}})
    with pytest.raises(ConfigError, match="MAILJET_LIST_ID"):
        mailjet.build_requests([rec], MailjetSettings(list_id=""))


def test_auth_is_basic_key_and_secret():
    headers = mailjet.auth(MailjetSettings(api_key="pub", api_secret=Secret("priv")))
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"pub:priv").decode()


def test_repair_defines_the_undefined_properties_typed_by_the_sent_values():
    request = mailjet.contact_upsert_request(
        record({"id": "j1", "destination": "mailjet", "op": "contact_upsert", "key": "a",
                "payload": {"email": "a@example.com",
                            "traits": {"vip": True, "age": 3, "plan": "pro"}}}),
        MailjetSettings(list_id="77"))
    body = json.dumps({"ErrorInfo": {"Properties": [{"vip": "Property not defined"},
                                                    {"age": "Property not defined"}]},
                       "ErrorMessage": "Object properties invalid", "StatusCode": 400})
    fixes = mailjet.repair(request, 400, body)
    assert [(f.path, f.body) for f in fixes] == [
        ("/contactmetadata", {"Datatype": "bool", "Name": "vip", "NameSpace": "static"}),
        ("/contactmetadata", {"Datatype": "int", "Name": "age", "NameSpace": "static"})]
    assert mailjet.repair(request, 400, '{"ErrorMessage": "Invalid email address"}') == []
    assert mailjet.repair(request, 500, body) == []
