"""orthanc_instances_received_total from Orthanc's NEW_INSTANCE changes, off the storing threads.

A stored-instance callback would run in Python on the thread that stores: with a Python plugin
that keeps the GIL during calls into Orthanc (4.0), a Python thread storing an instance at the
same moment waits for Orthanc's callback lock while holding the GIL, and both wait forever.
Changes arrive on their own thread; the details are read here, on another.

The instances create-dicom stores are counted without reading them back: before its store, create-dicom tells
what it expects (`expect`: the instance's Orthanc id, from what the builder wrote, with its series' Modality and
its transfer syntax), and after it the Origin that Orthanc recorded (`stored`), or that nothing new came
(`cancel`). A change of an expected instance waits (up to WAIT) for that answer; anything else, or an id that
does not match what Orthanc answered, is read back as before.
"""
import hashlib
import logging
import queue
import threading

from ..errors import OrthancError

logger = logging.getLogger(__name__)

BACKLOG = 100000  # instances waiting to be counted; beyond, they are dropped (and logged)
# Instances the plugin is storing, or stored and whose change is not counted yet; beyond, the oldest are
# forgotten (read back when their change comes). About 200 bytes each.
MAX_EXPECTED = 10000
WAIT = 2.0  # seconds a change of an expected instance waits for its store's answer; then it is read back


def orthanc_id(patient_id, study_uid, series_uid, sop_uid):
    """The id Orthanc gives an instance: the SHA-1 of its four identifiers (as Orthanc reads them) joined by
    "|", in five groups of eight hex digits (checked on Orthanc 1.10.1 and 1.13.0)."""
    digest = hashlib.sha1(("%s|%s|%s|%s" % (patient_id, study_uid, series_uid, sop_uid)).encode("utf-8")).hexdigest()
    return "%s-%s-%s-%s-%s" % (digest[:8], digest[8:16], digest[16:24], digest[24:32], digest[32:])


class _Expected:
    """An instance the plugin stores: its labels, the Origin once its store answered Success."""

    __slots__ = ("modality", "transfer_syntax", "origin")

    def __init__(self, modality, transfer_syntax):
        self.modality, self.transfer_syntax, self.origin = modality, transfer_syntax, None


class ReceivedCounter:
    """Reads each new instance's origin, transfer syntax and modality, and counts it (the plugin's own
    instances from what create-dicom told)."""

    def __init__(self, metrics, get_json):
        self._metrics, self._get_json = metrics, get_json
        self._queue = queue.Queue(BACKLOG)
        self._stop = threading.Event()
        self._thread = None
        self._expected = {}  # Orthanc id -> _Expected, oldest first
        self._answered = threading.Condition()  # guards _expected; notified when an entry changes

    def expect(self, instance_id, modality, transfer_syntax):
        """The plugin is about to store the instance of Orthanc id `instance_id`, of a series whose Modality is
        `modality`, in `transfer_syntax`; whether it is recorded (not while metrics are off). Then `stored` or
        `cancel`, always."""
        if not self._metrics.enabled():
            return False
        with self._answered:
            if self._expected.pop(instance_id, None) is not None:
                # Stored twice at once (a request setting the UIDs of another): which store made it is unknown.
                self._answered.notify_all()
                return False
            self._expected[instance_id] = _Expected(modality, transfer_syntax)
            if len(self._expected) > MAX_EXPECTED:
                del self._expected[next(iter(self._expected))]
                self._answered.notify_all()
        return True

    def stored(self, instance_id, origin):
        """The store of an expected instance answered Success with that id; Orthanc recorded `origin`."""
        with self._answered:
            entry = self._expected.get(instance_id)
            if entry is not None:
                entry.origin = origin
                self._answered.notify_all()

    def cancel(self, instance_id):
        """The store of an expected instance stored nothing new, failed, or answered another id: read it back."""
        with self._answered:
            if self._expected.pop(instance_id, None) is not None:
                self._answered.notify_all()

    def new_instance(self, instance_id):
        """A NEW_INSTANCE change (Orthanc's change thread): queue it, never block."""
        if not self._metrics.enabled():
            self.cancel(instance_id)  # not counted: no expectation of it left behind
            return
        try:
            self._queue.put_nowait(instance_id)
        except queue.Full:
            self.cancel(instance_id)
            logger.warning("Too many instances waiting to be counted: %s not counted", instance_id)

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="advanced-rest-received", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self):
        while not self._stop.is_set():
            try:
                instance_id = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            told = self._told(instance_id)
            if told is not None:
                self._metrics.instance_received(*told)
                continue
            try:
                metadata = self._get_json("/instances/%s/metadata?expand" % instance_id)
                series = self._get_json("/instances/%s/series" % instance_id)
            except OrthancError:
                continue  # deleted in the meantime
            except Exception:
                logger.exception("Could not count instance %s", instance_id)
                continue
            self._metrics.instance_received(metadata.get("Origin", "Unknown"),
                                            series.get("MainDicomTags", {}).get("Modality", ""),
                                            metadata.get("TransferSyntax", ""))

    def _told(self, instance_id):
        """(origin, modality, transfer syntax) as told for an expected instance, once its store answered (waiting
        up to WAIT); None: read it back (not expected, cancelled, forgotten or no answer in time)."""
        with self._answered:
            entry = self._expected.get(instance_id)
            if entry is None:
                return None
            self._answered.wait_for(lambda: entry.origin is not None or self._expected.get(instance_id) is not entry,
                                    WAIT)
            if self._expected.get(instance_id) is not entry:
                return None
            del self._expected[instance_id]
            return None if entry.origin is None else (entry.origin, entry.modality, entry.transfer_syntax)
