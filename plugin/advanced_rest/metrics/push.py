"""Headline values pushed into the core's own metrics (SetMetricsValue), so that they show
in /tools/metrics-prometheus even when the plugin does not serve that route."""
import logging
import threading

logger = logging.getLogger(__name__)

PUSH_EVERY = 5.0  # seconds


class Pusher:
    """Every PUSH_EVERY seconds, sets each `values()` item with `set_value(name, value)`."""

    def __init__(self, values, set_value, enabled):
        self._values, self._set, self._enabled = values, set_value, enabled
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="advanced-rest-metrics-push", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self):
        while not self._stop.is_set():
            try:
                if self._enabled():
                    for name, value in self._values().items():
                        self._set(name, value)
            except Exception:
                logger.exception("Could not push the plugin's headline metrics")
            self._stop.wait(PUSH_EVERY)


def headline(engine_jobs):
    """The pushed values: the plugin's jobs by state (names printed as is by the core)."""
    counts = {"orthanc_advanced_rest_jobs_pending": 0, "orthanc_advanced_rest_jobs_running": 0,
              "orthanc_advanced_rest_jobs_failure": 0, "orthanc_advanced_rest_jobs_success": 0}
    for job in engine_jobs():
        key = "orthanc_advanced_rest_jobs_%s" % job.get("State", "").lower()
        if key in counts:
            counts[key] += 1
    return counts
