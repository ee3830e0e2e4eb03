"""Which events a job's change makes, the body and headers of one delivery, and when to try again.
Pure: no I/O, the clock and randomness passed in."""
import datetime
import json
import uuid

import standardwebhooks

from .. import backoff
from ..jobs import model
from ..jobs.model import State

# The job's state -> the event of reaching it (Pending is JobSubmitted only when the job is new or
# resubmitted: a resumed or released job was submitted already).
_REACHED = {State.RUNNING: "JobRunning", State.PAUSED: "JobPaused", State.SUCCESS: "JobSuccess",
            State.FAILURE: "JobFailure", State.RETRY: "JobRetry", model.DELETED: "JobDeleted"}
TEST_EVENT = "Test"


def phase(job):
    """What a job's events follow of it: its State, and in Retry its Attempt too ("Retry/2"), so that each retry
    planned is one JobRetry (the runs in between may be too quick for the look at the core's jobs to see)."""
    state = job.get("State")
    return "%s/%s" % (state, job.get("Attempt")) if state == State.RETRY else state


def events_for(previous, state):
    """The events of a job going from `previous` (None: never seen) to `state` (each a State, or a `phase`)."""
    if previous == state:
        return []
    previous = previous.split("/")[0] if previous else previous
    state = state.split("/")[0]
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


# When to try a delivery again, and when it has failed for good: as the job retries do (backoff.py).
retry_delay = backoff.delay
gives_up = backoff.gives_up
