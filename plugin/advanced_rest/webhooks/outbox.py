"""One server's outbox: every delivery of every event, under one lock, saved as a whole.

A delivery is due once saved (durable before anything is sent), when its time has come, and when no
earlier delivery of the same job to the same endpoint is still pending (in order per job). Pure: the
saving, the clock and randomness are the caller's.
"""
import collections
import threading

from ..errors import DeliveryBusy, UnknownResource
from ..jobs.model import DELETED
from . import events

PENDING, DELIVERED, FAILED = "Pending", "Delivered", "Failed"
DELIVERY_STATES = (PENDING, DELIVERED, FAILED)
FORMAT = 1
KEPT_STATES = 10000  # jobs whose last evented state is remembered (older ones are forgotten first)


def former_names(endpoints):
    """{former name: name} of the configured endpoints ({name: settings.Webhook}) whose deliveries may be
    kept under the name 0.1.0 gave them (one that is now another endpoint's is not renamed)."""
    return {endpoint.former_name: name for name, endpoint in endpoints.items()
            if endpoint.former_name and endpoint.former_name not in endpoints}


class Outbox:
    """The deliveries of one server; `endpoints` the configured ones (settings.Webhook)."""

    def __init__(self, endpoints, max_pending, kept, clock, random):
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self._max_pending, self._kept = max_pending, kept
        self._clock, self._random = clock, random
        self._lock = threading.Condition()
        self._deliveries = collections.OrderedDict()  # Seq -> delivery (a dict, as saved)
        self._states = collections.OrderedDict()  # job id -> last state turned into events
        self._next = 1
        self._version = 0  # bumped at each change; what `saved` reached is durable
        self._saved = 0
        self._sending = set()  # Seq of deliveries being sent now
        self._pending = 0  # deliveries in state Pending
        self._refused = collections.Counter()  # (endpoint, event) -> refused since the last report

    # ---- events in ----------------------------------------------------------------------------

    def job_changed(self, job, change, replica=None):
        """A job's JSON as recorded in the feed (change number `change`): its events, one delivery per
        endpoint that wants each. An event refused by a full outbox is kept for `refusals()`."""
        job_id, state = job.get("ID"), events.phase(job)
        with self._lock:
            previous = self._states.get(job_id)
            if previous == state:
                return  # progress only: no event, nothing to save
            self._states.pop(job_id, None)
            if state != DELETED:
                self._states[job_id] = state
                while len(self._states) > KEPT_STATES:
                    self._states.popitem(last=False)
            now = self._clock()
            for event in events.events_for(previous, state):
                for endpoint in self.endpoints.values():
                    if not endpoint.wants(event, job.get("Type")):
                        continue
                    if self._pending >= self._max_pending:
                        self._refused[(endpoint.name, event)] += 1
                        continue
                    self._add(endpoint.name, event, job_id, job.get("Type"), change,
                              events.body(event, change, job, replica), now)
            self._version += 1
            self._lock.notify_all()

    def refusals(self):
        """{(endpoint, event): count} refused since the last call (reported by the caller, outside any lock)."""
        with self._lock:
            found = dict(self._refused)
            self._refused.clear()
            return found

    def _add(self, endpoint, event, job_id, job_type, change, text, now):
        seq = self._next
        self._next += 1
        self._deliveries[seq] = {"Seq": seq, "EventId": events.new_event_id(), "Endpoint": endpoint,
                                 "Event": event, "Job": job_id, "JobType": job_type, "Change": change,
                                 "Body": text, "State": PENDING, "Attempts": 0, "Created": now,
                                 "NextAttempt": now, "LastStatus": None, "LastError": None,
                                 "DeliveredAt": None, "Version": self._version + 1}
        self._pending += 1

    # ---- sending --------------------------------------------------------------------------------

    def take(self, endpoint, wait):
        """The next due delivery to `endpoint` (a copy, marked as being sent), waiting up to `wait` s
        for one; None if none is due by then."""
        with self._lock:
            deadline = self._clock() + wait
            while True:
                now = self._clock()
                found, soonest = self._due(endpoint, now)
                if found is not None:
                    self._sending.add(found["Seq"])
                    return dict(found)
                if now >= deadline:
                    return None
                until = deadline if soonest is None else min(deadline, soonest)
                self._lock.wait(max(0.01, until - now))

    def _due(self, endpoint, now):
        """(the due delivery or None, when the next one of this endpoint falls due or None)."""
        blocked = set()  # jobs with an earlier pending delivery to this endpoint
        soonest = None
        for delivery in self._deliveries.values():
            if delivery["State"] != PENDING or delivery["Endpoint"] != endpoint:
                continue
            job = delivery["Job"]
            if job in blocked:
                continue
            blocked.add(job)
            if delivery["Seq"] in self._sending or delivery["Version"] > self._saved:
                continue
            if delivery["NextAttempt"] <= now:
                return delivery, None
            soonest = delivery["NextAttempt"] if soonest is None else min(soonest, delivery["NextAttempt"])
        return None, soonest

    def attempted(self, delivery, status, error):
        """The outcome of sending `delivery` (as `take` gave it): HTTP `status` (None: none came) and what went wrong (None
        for a 2xx). Its new state."""
        seq = delivery["Seq"]
        with self._lock:
            self._sending.discard(seq)
            delivery = self._deliveries.get(seq)
            if delivery is None or delivery["State"] != PENDING:
                return delivery["State"] if delivery else None
            endpoint = self.endpoints.get(delivery["Endpoint"])
            now = self._clock()
            delivery["Attempts"] += 1
            delivery["LastStatus"], delivery["LastError"] = status, error
            if error is None:
                self._pending -= 1
                delivery["State"], delivery["DeliveredAt"] = DELIVERED, now
                delivery["Body"] = None if self._kept == 0 else delivery["Body"]
            elif endpoint is None or events.gives_up(delivery["Attempts"], delivery["Created"], now, endpoint):
                self._pending -= 1
                delivery["State"] = FAILED
            else:
                delivery["NextAttempt"] = now + events.retry_delay(delivery["Attempts"], endpoint, self._random)
            self._trim()
            self._version += 1
            self._lock.notify_all()
            return delivery["State"]

    def _trim(self):
        finished = [seq for seq, delivery in self._deliveries.items() if delivery["State"] != PENDING]
        for seq in finished[:max(0, len(finished) - self._kept)]:
            del self._deliveries[seq]

    # ---- repair and reading ---------------------------------------------------------------------

    def redeliver(self, seq):
        """Send delivery `seq` again (attempts and age counted afresh). Raises UnknownResource, DeliveryBusy."""
        with self._lock:
            delivery = self._deliveries.get(seq)
            if delivery is None or delivery["Body"] is None:
                raise UnknownResource("No webhook delivery %s is kept" % seq)
            if seq in self._sending:
                raise DeliveryBusy("Webhook delivery %s is being sent right now" % seq)
            now = self._clock()
            self._pending += delivery["State"] != PENDING
            delivery.update(State=PENDING, Attempts=0, Created=now, NextAttempt=now, DeliveredAt=None,
                            Version=self._version + 1)
            self._version += 1
            self._lock.notify_all()
            return dict(delivery)

    def list(self, state=None, job=None, since=0, limit=1000):
        """Copies of the saved deliveries after number `since`, oldest first, filtered by state and job
        (one not saved yet is not listed: what the API shows survives a crash)."""
        with self._lock:
            return [dict(delivery) for seq, delivery in self._deliveries.items()
                    if seq > since and delivery["Version"] <= self._saved and (state is None or delivery["State"] == state)
                    and (job is None or delivery["Job"] == job)][:limit]

    def depth(self):
        """(pending deliveries, the oldest pending one's creation time or None)."""
        with self._lock:
            oldest = min((delivery["Created"] for delivery in self._deliveries.values()
                          if delivery["State"] == PENDING), default=None)
            return self._pending, oldest

    # ---- saving ---------------------------------------------------------------------------------

    def snapshot(self):
        """(version, what to save) of the outbox now."""
        with self._lock:
            return self._version, {"Format": FORMAT, "Next": self._next, "States": dict(self._states),
                                   "Deliveries": [dict(delivery) for delivery in self._deliveries.values()]}

    def saved(self, version):
        """Everything up to `version` is durable: its deliveries may be sent."""
        with self._lock:
            self._saved = max(self._saved, version)
            self._lock.notify_all()

    def wait_change(self, timeout):
        """Wait up to `timeout` s while everything is saved."""
        with self._lock:
            if self._version <= self._saved:
                self._lock.wait(timeout)

    def unsaved(self):
        with self._lock:
            return self._version > self._saved

    def restore(self, saved):
        """Load what `snapshot` saved (at start), before whatever was queued meanwhile (renumbered after
        it: the saved deliveries of a job go first). Deliveries of endpoints no longer configured stay
        listed, failed; those kept under an endpoint's former name (settings.Webhook.former_name) are its.
        The deliveries restored.

        Raises:
            ValueError, KeyError, TypeError: `saved` is not what `snapshot` writes.
        """
        if not saved or saved.get("Format") != FORMAT:
            return 0
        restored = collections.OrderedDict()
        renamed = former_names(self.endpoints)
        for delivery in saved.get("Deliveries", []):
            delivery = dict(delivery, Version=0, Seq=int(delivery["Seq"]))
            delivery["Endpoint"] = renamed.get(delivery["Endpoint"], delivery["Endpoint"])
            if delivery["State"] not in DELIVERY_STATES:
                raise ValueError("unknown delivery state")
            if delivery["State"] == PENDING and delivery["Endpoint"] not in self.endpoints:
                delivery.update(State=FAILED, LastError="endpoint no longer configured")
            restored[delivery["Seq"]] = delivery
        following = max([int(saved.get("Next", 1))] + [seq + 1 for seq in restored])
        states = collections.OrderedDict((str(job), str(state)) for job, state in saved.get("States", {}).items())
        with self._lock:
            for delivery in self._deliveries.values():  # queued since the start: after the saved ones
                delivery["Seq"] = following
                restored[following] = delivery
                following += 1
            self._sending = set()  # nothing is sent before the restore (the senders start after it)
            states.update(self._states)  # what happened since the start is newer
            self._deliveries, self._states, self._next = restored, states, following
            self._pending = sum(1 for delivery in restored.values() if delivery["State"] == PENDING)
            self._version += 1
            return len(saved.get("Deliveries", []))
