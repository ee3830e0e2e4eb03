"""Saving the plugin's jobs in Orthanc's database (global properties), and loading them back.

One property holds the index of every job (small, rewritten within a second of any
change); each job that may run again keeps what re-creating it needs (its payload:
for create-dicom, the request) in a property of its own, written once.
"""
import json
import logging
import threading
import time

logger = logging.getLogger(__name__)

INDEX_PROPERTY = 7400
FIRST_PAYLOAD_PROPERTY = 7401
PAYLOAD_SLOTS = 599  # 7401..7999; ids from 1024 up are free for plugins (1025, 5467, 5468, 5500 are taken)
SAVE_WITHIN = 1.0  # seconds after a change
FORMAT = 1


class Store:
    """Persists an Engine through `get_property(id)` / `set_property(id, text)`."""

    def __init__(self, engine, get_property, set_property):
        self._engine = engine
        self._get, self._set = get_property, set_property
        self._slots = {}  # job id -> payload property
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one save at a time
        self._thread = None

    def changed(self, _job=None):
        """Something changed: save within SAVE_WITHIN seconds."""
        self._dirty.set()

    def load(self, runner_for):
        """Restore the saved jobs into the engine; `runner_for(type, payload)` makes runners."""
        try:
            index = json.loads(self._get(INDEX_PROPERTY) or "{}")
        except ValueError:
            logger.error("The saved jobs cannot be read; starting without them")
            return
        if index.get("Format") != FORMAT:
            return
        records = []
        for record in index.get("Jobs", []):
            slot = record.get("Slot")
            payload = None
            if slot is not None:
                try:
                    payload = json.loads(self._get(slot) or "null")
                except ValueError:
                    payload = None
                self._slots[record["ID"]] = slot
            record["Payload"] = payload
            records.append(record)

        def make(record):
            return runner_for(record["Type"], record["Payload"], record)

        self._engine.restore(records, make)
        logger.warning("Restored %d job(s) of the plugin", len(records))

    def start(self):
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
        """Write the index, and the payload of any job that has none saved yet."""
        with self._lock:
            exported = self._engine.export()
            alive = set()
            jobs = []
            for record, runner in exported:
                keep_payload = record["State"] != "Success"
                slot = self._slots.get(record["ID"])
                if keep_payload and slot is None:
                    payload = runner.payload()
                    slot = self._free_slot() if payload is not None else None
                    if slot is not None:
                        self._set(slot, json.dumps(payload))
                        self._slots[record["ID"]] = slot
                    elif payload is not None:
                        logger.warning("No room to save job %s: it will not survive a restart", record["ID"])
                if not keep_payload and slot is not None:
                    self._release(record["ID"])
                    slot = None
                if slot is not None:
                    alive.add(record["ID"])
                jobs.append(dict(record, Slot=slot))
            for job_id in set(self._slots) - alive:
                self._release(job_id)
            self._set(INDEX_PROPERTY, json.dumps({"Format": FORMAT, "Jobs": jobs, "SavedAt": time.time()}))

    def _free_slot(self):
        used = set(self._slots.values())
        for slot in range(FIRST_PAYLOAD_PROPERTY, FIRST_PAYLOAD_PROPERTY + PAYLOAD_SLOTS):
            if slot not in used:
                return slot
        return None

    def _release(self, job_id):
        slot = self._slots.pop(job_id)
        self._set(slot, "")
