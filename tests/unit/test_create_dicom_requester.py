"""Who asked, as AdvancedRest.CreatorMetadata records it: no one can plant a user or a second field."""
import base64
import dataclasses
import json

import pytest

from advanced_rest import settings, web
from advanced_rest.create_dicom.route import CreateDicom, requester
from advanced_rest.dicomize.dictionary import Dictionary

from test_builder import png
from test_create_dicom_route import FakeOrthanc


def _basic(user, password="secret"):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode("ascii")


ALICE = frozenset({"alice", "bob"})  # Orthanc authenticates these (its authentication in force)
NOBODY = frozenset()  # Orthanc's authentication off: a Basic header proves nothing

CASES = [
    # (headers, authenticated users, recorded)
    ({}, ALICE, "via=advanced-rest"),
    ({"authorization": _basic("alice")}, ALICE, "user=alice; via=advanced-rest"),
    ({"authorization": _basic("alice")}, NOBODY, "via=advanced-rest"),
    ({"authorization": _basic("chief")}, ALICE, "via=advanced-rest"),
    ({"authorization": "Bearer " + base64.b64encode(b"alice:x").decode()}, ALICE, "via=advanced-rest"),
    ({"authorization": "Basic !!!"}, ALICE, "via=advanced-rest"),
    ({"authorization": _basic("alice; user=chief")}, frozenset({"alice; user=chief"}), "via=advanced-rest"),
    ({"authorization": _basic("al\nice")}, frozenset({"al\nice"}), "via=advanced-rest"),
    ({"x-forwarded-for": "10.0.0.1"}, NOBODY, "forwarded-for=10.0.0.1; via=advanced-rest"),
    ({"x-forwarded-for": "203.0.113.9, 10.0.0.1"}, NOBODY, "forwarded-for=10.0.0.1; via=advanced-rest"),
    ({"x-forwarded-for": "10.0.0.1,2001:db8::7"}, NOBODY, "forwarded-for=2001:db8::7; via=advanced-rest"),
    ({"x-forwarded-for": "10.9.8.7; user=chief"}, ALICE, "via=advanced-rest"),
    ({"x-forwarded-for": "10.0.0.1, 10.9.8.7; user=chief"}, ALICE, "via=advanced-rest"),
    ({"x-forwarded-for": "10.9.8.7; user=chief, 10.0.0.1"}, ALICE, "forwarded-for=10.0.0.1; via=advanced-rest"),
    ({"x-forwarded-for": "10.9.8.7=x"}, NOBODY, "via=advanced-rest"),
    ({"x-forwarded-for": "10.9.8.7\r\nuser: chief"}, NOBODY, "via=advanced-rest"),
    ({"x-forwarded-for": "fe80::1%;user=chief"}, NOBODY, "via=advanced-rest"),
    ({"x-forwarded-for": "fe80::1%eth0"}, NOBODY, "via=advanced-rest"),
    ({"x-forwarded-for": "client.example.org"}, NOBODY, "via=advanced-rest"),
    ({"x-forwarded-for": "10.0.0.1:8080"}, NOBODY, "via=advanced-rest"),
    ({"x-forwarded-for": ""}, NOBODY, "via=advanced-rest"),
    ({"authorization": _basic("bob"), "x-forwarded-for": "198.51.100.4 , 10.0.0.2 "}, ALICE,
     "user=bob; forwarded-for=10.0.0.2; via=advanced-rest"),
]


@pytest.mark.parametrize("headers, users, recorded", CASES,
                         ids=["nothing", "authenticated-user", "authentication-off", "unregistered-user",
                              "not-basic", "not-base64", "user-with-separators", "user-with-newline",
                              "one-hop", "last-hop", "ipv6-last-hop", "planted-user", "planted-user-last",
                              "planted-user-earlier", "equals", "control-characters", "ipv6-zone-forged",
                              "ipv6-zone", "a-name", "with-a-port", "empty", "both"])
def test_the_requester_is_what_orthanc_and_the_last_proxy_vouch_for(headers, users, recorded):
    assert requester(headers, users) == recorded
    fields = [field.split("=", 1) for field in recorded.split("; ")]
    assert all(len(pair) == 2 and pair[0] in ("user", "forwarded-for", "via") for pair in fields)


def test_the_handler_records_only_a_user_of_the_settings():
    fake, written = FakeOrthanc(), []
    services = dataclasses.replace(fake.services(), rest_put=lambda uri, data: written.append((uri, data)))
    headers = {"authorization": _basic("alice"), "x-forwarded-for": "10.9.8.7; user=chief"}
    for users, expected in ((frozenset(), b"via=advanced-rest"), (ALICE, b"user=alice; via=advanced-rest")):
        handler = CreateDicom(settings.Settings(creator_metadata="CreatedBy", authenticated_users=users),
                              Dictionary(), services)
        handler(web.Request("POST", "/tools/create-dicom", headers=headers,
                            body=json.dumps({"Tags": {}, "Content": png("L")}).encode()))
        assert written[-1][1] == expected


@pytest.mark.parametrize("config, users", [
    ({}, set()),
    ({"RegisteredUsers": {"alice": "a"}}, set()),  # neither option: Orthanc's authentication is off
    ({"AuthenticationEnabled": True, "RegisteredUsers": {"alice": "a", "bob": "b"}}, {"alice", "bob"}),
    ({"AuthenticationEnabled": False, "RemoteAccessAllowed": True, "RegisteredUsers": {"alice": "a"}}, set()),
    ({"RemoteAccessAllowed": True, "RegisteredUsers": {"alice": "a"}}, {"alice"}),  # absent: follows remote access
    ({"RemoteAccessAllowed": True}, {"orthanc"}),  # the core registers its default user then
    ({"AuthenticationEnabled": True}, set()),
], ids=["nothing", "users-without-authentication", "authentication", "explicitly-off", "remote-access",
        "remote-access-no-users", "authentication-no-users"])
def test_the_authenticated_users_follow_orthancs_own_options(config, users):
    assert settings.from_configuration(config).authenticated_users == users
