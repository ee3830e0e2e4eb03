"""{Root}/webhooks...: the endpoints configured, the deliveries (seen and repaired), a test event."""
import datetime
import json
import threading
import time

from ..errors import BadRequest, DeliveryBusy, UnknownResource
from ..jobs import model
from ..settings import url_origin
from ..web import GROUP, json_response, query_number
from . import dispatch, events
from .outbox import DELIVERY_STATES

MAX_LISTED = 1000


def _when(seconds):
    if seconds is None:
        return None
    return model.timestamp(datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc))


def shown(delivery):
    """A delivery as the API shows it (no body, no claim token; in a cluster, the replica sending it now)."""
    return {"ID": delivery["Seq"], "EventId": delivery["EventId"], "Endpoint": delivery["Endpoint"],
            "Event": delivery["Event"], "Job": delivery["Job"], "JobType": delivery["JobType"],
            "Change": delivery["Change"], "State": delivery["State"], "Attempts": delivery["Attempts"],
            "CreationTime": _when(delivery["Created"]),
            "NextAttempt": _when(delivery["NextAttempt"]) if delivery["State"] == "Pending" else None,
            "LastStatus": delivery["LastStatus"], "LastError": delivery["LastError"],
            "DeliveryTime": _when(delivery["DeliveredAt"]),
            **({"SentBy": delivery["SentBy"]} if "SentBy" in delivery else {})}


class WebhooksApi:
    """Handlers of the webhooks routes, over an outbox (one server's or the cluster's)."""

    def __init__(self, outbox, replica=None, post=None, clock=time.time):
        self._outbox, self._replica = outbox, replica
        self._post, self._clock = post, clock
        # One test per endpoint at a time: each holds an HTTP thread up to the endpoint's TimeoutSeconds.
        self._testing = {name: threading.Lock() for name in outbox.endpoints}

    def routes(self):
        return [("/webhooks", {"GET": self.endpoints}),
                ("/webhooks/deliveries", {"GET": self.deliveries}),
                ("/webhooks/deliveries/%s/redeliver" % GROUP, {"POST": self.redeliver}),
                ("/webhooks/test", {"POST": self.test})]

    def endpoints(self, request):
        """The configured endpoints, as logs may show them: no secret, and of the URL its scheme, host and
        port only (a path, query or credentials may hold a token)."""
        return json_response([{"Name": endpoint.name, "Url": url_origin(endpoint.url), "Events": list(endpoint.events),
                               "Types": list(endpoint.types), "Signed": bool(endpoint.secret),
                               "TimeoutSeconds": endpoint.timeout_seconds, "MaxAttempts": endpoint.max_attempts,
                               "MaxAgeHours": endpoint.max_age_hours}
                              for endpoint in self._outbox.endpoints.values()])

    def deliveries(self, request):
        state = request.get.get("state")
        if state is not None:
            named = {known.lower(): known for known in DELIVERY_STATES}
            if state.lower() not in named:
                raise BadRequest("state must be one of %s" % ", ".join(s.lower() for s in DELIVERY_STATES))
            state = named[state.lower()]
        job = request.get.get("job") or None
        since = query_number(request.get, "since", 0, int, 0, 2 ** 62)
        limit = query_number(request.get, "limit", MAX_LISTED, int, 0, MAX_LISTED)
        found = self._outbox.list(state=state, job=job, since=since, limit=limit)
        return json_response({"Deliveries": [shown(delivery) for delivery in found],
                              "Last": found[-1]["Seq"] if found else since})

    def redeliver(self, request):
        try:
            seq = int(request.groups[0])
        except ValueError:
            raise UnknownResource("No webhook delivery %s is kept" % request.groups[0]) from None
        return json_response(shown(self._outbox.redeliver(seq)))

    def test(self, request):
        """Send one Test event now to an endpoint (its Name in the body; optional when there is one)."""
        endpoints = self._outbox.endpoints
        name = None
        if request.body.strip():
            try:
                body = json.loads(request.body)
            except ValueError:
                raise BadRequest("The body must be JSON: {\"Endpoint\": name}") from None
            if not isinstance(body, dict) or not isinstance(body.get("Endpoint", ""), str):
                raise BadRequest("The body must be {\"Endpoint\": name}")
            name = body.get("Endpoint") or None
        if name is None:
            if len(endpoints) != 1:
                raise BadRequest("Name the endpoint: {\"Endpoint\": name} (configured: %d)" % len(endpoints))
            name = next(iter(endpoints))
        endpoint = endpoints.get(name)
        if endpoint is None:
            raise UnknownResource("No webhook endpoint is named %r" % name)
        delivery = {"EventId": events.new_event_id(), "Body": events.body(events.TEST_EVENT, None, None, self._replica)}
        kwargs = {"post": self._post} if self._post is not None else {}
        if not self._testing[name].acquire(blocking=False):
            raise DeliveryBusy("A test of webhook endpoint %r is under way" % name)
        try:
            status, error = dispatch.attempt(endpoint, delivery, clock=self._clock, **kwargs)
        finally:
            self._testing[name].release()
        return json_response({"Endpoint": name, "EventId": delivery["EventId"], "Delivered": error is None,
                              "Status": status, "Error": error})
