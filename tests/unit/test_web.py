import json

import pytest

from advanced_rest import errors, web


class FakeTransport:
    def __init__(self):
        self.routes, self.sent = {}, []
        self.transport = web.Transport(
            answer=lambda output, body, mime: self.sent.append((200, body, mime)),
            send_status=lambda output, status, body, headers=None: self.sent.append((status, body, headers or None)),
            method_not_allowed=lambda output, allowed: self.sent.append((405, allowed, None)),
            register=self.routes.__setitem__,
        )


def _serve(handler, method="POST"):
    fake = FakeTransport()
    web.Router(fake.transport).add("/x", {"POST": handler})
    fake.routes["/x"](object(), "/x", method=method, groups=(), headers={}, body=b"{}")
    return fake.sent[-1]


def test_answer_is_passed_through():
    assert _serve(lambda request: web.json_response({"A": 1})) == (200, b'{\n   "A" : 1\n}', "application/json")


def test_our_errors_become_the_core_error_body():
    def handler(request):
        raise errors.BadRequest("nope")
    status, body, _ = _serve(handler)
    assert status == 400 and json.loads(body)["Details"] == "nope"


def test_unexpected_exception_is_a_500_not_a_crash():
    def handler(request):
        raise ZeroDivisionError()
    status, body, _ = _serve(handler)
    assert status == 500 and json.loads(body)["HttpStatus"] == 500


def test_other_methods_get_405_with_allow():
    assert _serve(lambda request: None, method="GET") == (405, "POST", None)


def test_method_not_allowed_from_a_handler_goes_through_the_allow_call():
    def handler(request):
        raise errors.MethodNotAllowed("GET")
    assert _serve(handler) == (405, "GET", None)


def test_rejected_values_reach_the_log_at_debug_only(caplog):
    import logging

    def handler(request):
        raise errors.BadRequest('Tag 0010,0010 cannot hold the value "Doe^Jane"')
    with caplog.at_level(logging.INFO, logger="advanced_rest"):
        _serve(handler)
    assert caplog.records and "Doe^Jane" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="advanced_rest"):
        _serve(handler)
    assert "Doe^Jane" in caplog.text


def test_a_full_queue_sends_retry_after():
    def handler(request):
        raise errors.QueueFull("100 plugin jobs are already pending (AdvancedRest.MaxPendingJobs)")
    status, body, headers = _serve(handler)
    assert status == 503 and headers == {"Retry-After": "5"}


def test_a_client_gone_before_the_answer_is_not_an_error(caplog):
    fake = FakeTransport()

    def gone(output, body, mime):
        raise ConnectionResetError()
    fake.transport = web.Transport(gone, fake.transport.send_status, fake.transport.method_not_allowed,
                                   fake.transport.register)
    web.Router(fake.transport).add("/x", {"GET": lambda request: web.json_response({})})
    fake.routes["/x"](object(), "/x", method="GET", groups=(), headers={})
    assert not [record for record in caplog.records if record.levelname in ("ERROR", "WARNING")]


def test_memory_is_given_back_after_a_large_body_only():
    fake, calls = FakeTransport(), []
    router = web.Router(fake.transport, after_large=lambda: calls.append(1), large=1000)
    router.add("/x", {"POST": lambda request: web.json_response({})})
    fake.routes["/x"](object(), "/x", method="POST", groups=(), headers={}, body=b"x" * 999)
    assert calls == []
    fake.routes["/x"](object(), "/x", method="POST", groups=(), headers={}, body=b"x" * 1000)
    assert calls == [1]


def test_give_back_runs_here():
    from advanced_rest import memory
    memory.give_back()  # glibc on every leg: must not raise
    assert memory._TRIM is not None


@pytest.mark.parametrize("value", [
    {"ID": "a", "Path": "/instances/a", "ParentPatient": "p", "ParentStudy": "s", "ParentSeries": "se",
     "Status": "Success"},
    {"b": 1, "a": 2.5, "c": None, "d": True, "é": "ü\u2028\"\\\n"}, {"one": "x"}, {}, [], {"nested": {"x": [1]}},
    {"list": [1, "a"]}, {1: "int key"},
])
def test_json_answers_have_the_cores_format_whichever_way_they_are_printed(value):
    assert web.json_response(value).body == json.dumps(value, indent=3, separators=(",", " : "), sort_keys=True,
                                                       ensure_ascii=False).encode("utf-8")


HOST = {"host": "pacs.example.org:8042"}


@pytest.mark.parametrize("method, headers, refused", [
    ("POST", {}, False),  # curl, a script: neither header
    ("POST", {"sec-fetch-site": "same-origin"}, False),
    ("POST", {"sec-fetch-site": "none"}, False),  # typed in the address bar, a bookmark
    ("POST", {"sec-fetch-site": "cross-site", "origin": "https://evil.example.com"}, True),
    ("DELETE", {"sec-fetch-site": "same-site", "origin": "https://other.example.org"}, True),
    ("PUT", {"origin": "https://evil.example.com"}, True),  # a browser before Sec-Fetch-Site
    ("POST", {"origin": "null"}, True),  # a sandboxed frame, a file:// page
    ("POST", {"origin": "http://pacs.example.org:8042"}, False),
    ("POST", {"origin": "http://PACS.example.org:8042"}, False),
    ("POST", {"origin": "http://pacs.example.org:9999"}, True),
    ("GET", {"sec-fetch-site": "cross-site", "origin": "https://evil.example.com"}, False),  # reads change nothing
    ("HEAD", {"sec-fetch-site": "cross-site"}, False),
    ("POST", {"sec-fetch-site": "cross-site", "origin": "https://viewer.example.org"}, False),  # trusted
    ("POST", {"origin": "https://VIEWER.example.org"}, False),
])
def test_a_browsers_cross_site_request_may_not_change_anything(method, headers, refused):
    reason = web.cross_site(method, dict(HOST, **headers), trusted=frozenset({"https://viewer.example.org"}))
    assert (reason is not None) is refused


def test_a_cross_site_post_is_refused_with_403_before_its_handler_runs():
    ran = []
    fake = FakeTransport()
    web.Router(fake.transport).add("/x", {"POST": lambda request: ran.append(1) or web.json_response({})})
    fake.routes["/x"](object(), "/x", method="POST", groups=(), body=b"{}",
                      headers=dict(HOST, **{"sec-fetch-site": "cross-site", "origin": "https://evil.example.com"}))
    status, body, _ = fake.sent[-1]
    assert (status, json.loads(body)["OrthancStatus"], ran) == (403, 45, [])
    assert "TrustedOrigins" in json.loads(body)["Details"]
