"""The threads that send: one per endpoint (a slow or hanging receiver delays only its own deliveries),
and, on one server, the one that saves the outbox before its deliveries may be sent."""
import json
import logging
import threading
import time

from . import events, sender

logger = logging.getLogger(__name__)

TAKE_WAIT = 1.0  # seconds a sender waits for a due delivery before looking again (and at stop)
LOOK_EVERY = 1.0  # seconds between two looks at the cluster's outbox (its depth, its trimming)
SAVE_BATCH = 0.02  # seconds the saver lets more events gather before a save
OUTBOX_PROPERTY = 7300  # one server's outbox, in a global property (the jobs use 7400-7999)


def attempt(endpoint, delivery, post=sender.post, clock=time.time):
    """Send `delivery` once to `endpoint`: (status, error)."""
    text = delivery["Body"]
    return post(endpoint.url, text, events.headers(delivery["EventId"], text, endpoint.secret, clock()),
                endpoint.timeout_seconds)


class Dispatcher:
    """Sends the deliveries of `outbox` (outbox.Outbox, or the cluster's) to its endpoints."""

    def __init__(self, outbox, endpoints, observe=None, post=sender.post, clock=time.time, look=None, refused=None):
        self._outbox, self._endpoints = outbox, list(endpoints)
        self._look = look  # () -> None every LOOK_EVERY seconds (the cluster's upkeep), or None
        self._refused = refused  # ({(endpoint, event): count}) -> None every LOOK_EVERY seconds, if any
        self._observe = observe  # (endpoint name, state after the attempt, seconds since the event) -> None
        self._post, self._clock = post, clock
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        self._stop.clear()
        for endpoint in self._endpoints:
            thread = threading.Thread(target=self._loop, args=(endpoint,), daemon=True,
                                      name="advanced-rest-webhook-%s" % endpoint.name[:20])
            thread.start()
            self._threads.append(thread)
        thread = threading.Thread(target=self._upkeep, daemon=True, name="advanced-rest-webhook-upkeep")
        thread.start()
        self._threads.append(thread)

    def _upkeep(self):
        """Every LOOK_EVERY seconds: the cluster's look at its outbox, and the refusals reported (out of
        every lock and transaction: the log and metrics call into Orthanc)."""
        while not self._stop.is_set():
            try:
                if self._look is not None:
                    self._look()
            except Exception as error:
                logger.warning("Webhooks: could not look at the outbox (%s)", type(error).__name__)
            try:
                refused = self._outbox.refusals()
                if refused and self._refused is not None:
                    self._refused(refused)
            except Exception:
                logger.exception("Webhooks: could not report the refused events")
            self._stop.wait(LOOK_EVERY)

    def stop(self):
        """Stop sending; a delivery being sent ends with its attempt (at most its endpoint's timeout)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(1.0)  # a hanging receiver must not hold Orthanc's stop: its thread is a daemon
        self._threads = []

    def _loop(self, endpoint):
        while not self._stop.is_set():
            try:
                delivery = self._outbox.take(endpoint.name, TAKE_WAIT)
                if delivery is None:
                    continue
                status, error = attempt(endpoint, delivery, self._post, self._clock)
                state = self._outbox.attempted(delivery, status, error)
                if error is not None:
                    logger.info("Webhook %s: delivery %s of %s failed (%s), attempt %d%s", endpoint.name,
                                delivery["Seq"], delivery["Event"], error, delivery["Attempts"] + 1,
                                "; given up" if state == "Failed" else "")
                if self._observe is not None and state is not None:
                    self._observe(endpoint.name, "Retried" if state == "Pending" else state,
                                  max(0.0, self._clock() - delivery["Created"]))
            except Exception:
                logger.exception("Webhook %s: the sender failed; trying again in a second", endpoint.name)
                self._stop.wait(1.0)


class Saver:
    """Saves one server's outbox soon after each change, in one global property; the jobs' store also
    calls `save` before each of its saves (jobs/store.py: events durable no later than their change)."""

    def __init__(self, outbox, get_property, set_property):
        self._outbox = outbox
        self._get, self._set = get_property, set_property
        self._stop = threading.Event()
        self._thread = None
        # One save at a time: two threads (this saver's, the jobs store's) could otherwise write an older
        # snapshot over a newer one, after the newer one was marked saved.
        self._lock = threading.Lock()

    def load(self):
        """Restore what was saved; the deliveries restored."""
        try:
            text = self._get(OUTBOX_PROPERTY)
            count = self._outbox.restore(json.loads(text) if text else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.error("The saved webhook deliveries cannot be read; starting without them")
            return 0
        if count:
            logger.warning("Restored %d webhook delivery(ies)", count)
        return count

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="advanced-rest-webhook-outbox", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.save()

    def save(self):
        """Make every delivery queued so far durable (nothing is written when all of it is already)."""
        with self._lock:
            if not self._outbox.unsaved():
                return
            version, document = self._outbox.snapshot()
            self._set(OUTBOX_PROPERTY, json.dumps(document))
            self._outbox.saved(version)

    def _loop(self):
        while not self._stop.is_set():
            if not self._outbox.unsaved():
                self._outbox.wait_change(TAKE_WAIT)
                continue
            self._stop.wait(SAVE_BATCH)
            try:
                self.save()
            except Exception:
                logger.exception("Could not save the webhook deliveries; trying again in a second")
                self._stop.wait(1.0)
