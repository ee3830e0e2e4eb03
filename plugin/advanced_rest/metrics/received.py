"""orthanc_instances_received_total from Orthanc's NEW_INSTANCE changes, off the storing threads.

A stored-instance callback would run in Python on the thread that stores: with a Python plugin
that keeps the GIL during calls into Orthanc (4.0), a Python thread storing an instance at the
same moment waits for Orthanc's callback lock while holding the GIL, and both wait forever.
Changes arrive on their own thread; the details are read here, on another.
"""
import logging
import queue
import threading

from ..errors import OrthancError

logger = logging.getLogger(__name__)

BACKLOG = 100000  # instances waiting to be counted; beyond, they are dropped (and logged)


class ReceivedCounter:
    """Reads each new instance's origin, transfer syntax and modality, and counts it."""

    def __init__(self, metrics, get_json):
        self._metrics, self._get_json = metrics, get_json
        self._queue = queue.Queue(BACKLOG)
        self._stop = threading.Event()
        self._thread = None

    def new_instance(self, instance_id):
        """A NEW_INSTANCE change (Orthanc's change thread): queue it, never block."""
        if not self._metrics.enabled():
            return
        try:
            self._queue.put_nowait(instance_id)
        except queue.Full:
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
