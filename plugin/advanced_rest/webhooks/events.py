"""Which events a job's change makes, the body and headers of one delivery, and when to try again.
Pure: no I/O, the clock and randomness passed in."""
import datetime
import json
import uuid

import standardwebhooks

from ..jobs import model
from ..jobs.model import State

# The job's state -> the event of reaching it (Pending is JobSubmitted only when the job is new or
# resubmitted: a resumed or released job was submitted already).
_REACHED = {State.RUNNING: "JobRunning", State.PAUSED: "JobPaused", State.SUCCESS: "JobSuccess",
            State.FAILURE: "JobFailure", model.DELETED: "JobDeleted"}
TEST_EVENT = "Test"


def events_for(previous, state):
    """The events of a job going from state `previous` (None: never seen) to `state`, in order."""
    if previous == state:
        return []
    events = []
    if previous is None or (state == State.PENDING and previous in model.FINISHED):
        if state != model.DELETED:
            events.append("JobSubmitted")  # first seen (maybe already running or ended), or resubmitted
    reached = _REACHED.get(state)
    if reached is not None:
        events.append(reached)
    return events


def new_event_id():
    """A `webhook-id`: the same for every attempt of one event to one endpoint."""
    return "msg_" + uuid.uuid4().hex


def body(event, change, job, replica=None):
    """The delivery's JSON text: the event, the change number, the job as /jobs/{id} shows it."""
    document = {"Event": event, "Change": change, "Job": job}
    if replica:
        document["Replica"] = replica
    return json.dumps(document, sort_keys=True)


def headers(event_id, text, secret, now):
    """The Standard Webhooks headers of one attempt at `now` (seconds since the epoch); signed with a secret."""
    timestamp = int(now)
    result = {"Content-Type": "application/json", "webhook-id": event_id, "webhook-timestamp": str(timestamp)}
    if secret:
        stamp = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
        result["webhook-signature"] = standardwebhooks.Webhook(secret).sign(event_id, stamp, text)
    return result


def retry_delay(attempts, endpoint, random):
    """Seconds before the next attempt after `attempts` failed ones: doubling from the endpoint's
    BackoffSeconds up to its MaxBackoffSeconds, each drawn in [half, all] of that (jitter)."""
    delay = min(endpoint.max_backoff_seconds, endpoint.backoff_seconds * 2 ** max(0, attempts - 1))
    return delay * (0.5 + 0.5 * random())


def gives_up(attempts, created, now, endpoint):
    """Whether a delivery that failed `attempts` times, made at `created`, is failed for good."""
    return attempts >= endpoint.max_attempts or now - created >= endpoint.max_age_hours * 3600
