import json

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
