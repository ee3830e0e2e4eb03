"""Saving the plugin's jobs in Orthanc's database (global properties), and loading them back.

One property holds the index of every job (small: rewritten before a submission or an
action is answered, and within a second of any other change); each job that may run
again keeps what re-creating it needs (its payload: for create-dicom, the request) in
a property of its own, written once, before the index that names it. Once the index names
it, the jobs are told (`LocalStore.saved`): a job that waits then keeps no request in memory,
and the worker that takes it reads it back from its property.

A job's events (the webhooks' outbox) are durable no later than the change that made them: each save
takes the jobs' snapshot, then makes the outbox durable (`durable_first`: every event of a change the
jobs told is in the outbox by then, since the feed queues them while the jobs' lock is held),
then writes the index. A crash never leaves a saved state whose events were not saved.
"""
import base64
import json
import logging
import threading
import time

from ..errors import JobsLoading
from .model import State

logger = logging.getLogger(__name__)

INDEX_PROPERTY = 7400
FIRST_PAYLOAD_PROPERTY = 7401
PAYLOAD_SLOTS = 599  # 7401..7999; ids from 1024 up are free for plugins (1025, 5467, 5468, 5500 are taken)
SAVE_WITHIN = 1.0  # seconds after a change
READY_WITHIN = 10.0  # seconds a save waits for the saved jobs to be loaded at start
FORMAT = 2  # 2: payloads as encode_payload writes them


class Store:
    """Persists one server's jobs (local.LocalStore) through `get_property(id)` / `set_property(id, text)`; `durable_first()` (optional)
    makes durable, before each index is written, what the jobs' changes told so far made (the webhooks'
    outbox: webhooks.dispatch.Saver.save)."""

    def __init__(self, jobs, get_property, set_property, durable_first=None):
        self._jobs = jobs
        self._get, self._set = get_property, set_property
        self._durable_first = durable_first
        self._slots = {}  # job id -> payload property
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one save at a time
        self._thread = None
        # Saving before the saved jobs are loaded would overwrite them with nothing.
        self._ready = threading.Event()

    def changed(self, _job=None):
        """Something changed: save within SAVE_WITHIN seconds."""
        self._dirty.set()

    def read(self):
        """The saved records, each with its "Payload" (or None); [] when nothing (readable) is saved."""
        try:
            index = json.loads(self._get(INDEX_PROPERTY) or "{}")
        except ValueError:
            logger.error("The saved jobs cannot be read; starting without them")
            return []
        if not index:
            return []  # nothing saved yet
        if index.get("Format") not in (1, FORMAT):
            logger.error("The saved jobs are of an unknown format %r; starting without them", index.get("Format"))
            return []
        records = []
        for record in index.get("Jobs", []):
            slot = record.get("Slot")
            payload = None
            if slot is not None:
                try:
                    payload = decode_payload(self._get(slot)) if index["Format"] == FORMAT \
                        else _payload_of_format_1(self._get(slot))
                except ValueError:
                    logger.error("The saved request of job %s cannot be read", record.get("ID"))
                    payload = None
                self._slots[record["ID"]] = slot
            record["Payload"] = payload
            records.append(record)
        return records

    def load(self, runner_for):
        """Restore the saved jobs; `runner_for(type, payload, record)` makes runners."""
        records = self.read()
        if not records:
            return

        def make(record):
            return runner_for(record["Type"], record["Payload"], record)

        self._jobs.restore(records, make)
        for record in records:
            if record["Payload"] is not None and record["ID"] in self._slots:
                self._jobs.saved(record["ID"], self._loader(self._slots[record["ID"]], record["ID"]))
        logger.warning("Restored %d job(s) of the plugin", len(records))

    def clear(self):
        """Forget everything saved (once moved elsewhere): the index first, then the payloads."""
        self._set(INDEX_PROPERTY, "")
        for slot in sorted(set(self._slots.values())):
            self._set(slot, "")
        self._slots = {}

    def start(self):
        """Start saving (call after `load`, or instead of it to start afresh)."""
        self._ready.set()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="advanced-rest-jobs-store", daemon=True)
        self._thread.start()

    def stop(self):
        """Stop the saver, then save once more."""
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(10)
        self.save()

    def _loop(self):
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            self._dirty.clear()
            try:
                self.save()
            except Exception:
                logger.exception("Could not save the plugin's jobs")
            self._stop.wait(SAVE_WITHIN)

    def save(self):
        """Make every job durable: new payloads first, then the events of the changes it holds
        (`durable_first`), then the index, then free what it no longer names.

        That order never lets a saved index name a slot that holds another job's payload (a slot is
        reused only once an index without it has been written), nor hold a change whose events are not
        saved (the snapshot is taken before the events are made durable).
        """
        if not self._ready.wait(READY_WITHIN):
            raise JobsLoading("The plugin's saved jobs are still being loaded: try again in a moment")
        with self._lock:
            exported = self._jobs.export()
            jobs, keep, written = [], {}, []
            for record, runner in exported:
                slot = self._slots.get(record["ID"])
                if record["State"] != State.SUCCESS and slot is None:
                    payload = runner.payload()
                    slot = self._free_slot(keep) if payload is not None else None
                    if slot is not None:
                        self._set(slot, encode_payload(payload))
                        written.append((record["ID"], slot))
                    elif payload is not None:
                        logger.warning("No room to save job %s: it will not survive a restart", record["ID"])
                if record["State"] == State.SUCCESS:
                    slot = None  # a finished success never runs again
                if slot is not None:
                    keep[record["ID"]] = slot
                jobs.append(dict(record, Slot=slot))
            if self._durable_first is not None:
                self._durable_first()  # raises when it cannot: the index is not written either
            self._set(INDEX_PROPERTY, json.dumps({"Format": FORMAT, "Jobs": jobs, "SavedAt": time.time()}))
            freed = set(self._slots.values()) - set(keep.values())
            self._slots = keep
            # Named by the saved index now: the slot stays the job's while it may run again (freed only
            # once it succeeded or is gone), so reading it back gives this job's payload.
            for job_id, slot in written:
                self._jobs.saved(job_id, self._loader(slot, job_id))
            for slot in sorted(freed):
                self._set(slot, "")

    def _loader(self, slot, job_id):
        """() -> the payload saved in `slot`, or None when it cannot be read (logged)."""
        def load():
            try:
                return decode_payload(self._get(slot))
            except ValueError:
                logger.error("The saved request of job %s cannot be read", job_id)
                return None
        return load

    def _free_slot(self, taken):
        used = set(self._slots.values()) | set(taken.values())  # named by the saved index, or by this one
        for slot in range(FIRST_PAYLOAD_PROPERTY, FIRST_PAYLOAD_PROPERTY + PAYLOAD_SLOTS):
            if slot not in used:
                return slot
        return None


def encode_payload(payload):
    """A payload as saved: its JSON header on the first line, then its "Body" text as is.

    The body is JSON text already (a create-dicom request, data URIs included): kept as it
    came rather than escaped or base64-encoded again, it costs its own size once.
    """
    payload = dict(payload)
    body = payload.pop("Body", None)
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            payload["BodyBase64"] = base64.b64encode(body).decode("ascii")
            body = None
    header = json.dumps(payload)
    return header if body is None else header + "\n" + body


def _payload_of_format_1(text):
    """A payload saved by the first release: JSON with the body in base64."""
    payload = json.loads(text or "null")
    if payload and "Body" in payload:
        payload["Body"] = base64.b64decode(payload["Body"])
    return payload


def decode_payload(text):
    """The payload saved by `encode_payload` (its "Body" as bytes), or None; also one the first release
    saved (still in its slot after the index was saved again in this format).

    Raises:
        ValueError: a header that is not JSON.
    """
    if not text:
        return None
    header, newline, body = text.partition("\n")
    payload = json.loads(header)
    if payload is None:
        return None
    if "BodyBase64" in payload:
        payload["Body"] = base64.b64decode(payload.pop("BodyBase64"))
    elif newline:
        payload["Body"] = body.encode("utf-8")
    elif isinstance(payload.get("Body"), str):  # the first release's: JSON, the body in base64
        payload["Body"] = base64.b64decode(payload["Body"])
    return payload
