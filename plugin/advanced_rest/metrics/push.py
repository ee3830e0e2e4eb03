"""Headline values pushed into the core's own metrics (SetMetricsValue), so that they show
in /tools/metrics-prometheus even when the plugin does not serve that route."""
import logging
import threading

from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

PUSH_EVERY = 5.0  # seconds

# name -> HELP. The core prints pushed names verbatim, without HELP or TYPE: where the plugin serves
# /tools/metrics-prometheus, HeadlineCollector replaces the core's copies with typed families.
HEADLINE = {
    "orthanc_advanced_rest_jobs_pending": "The plugin's jobs waiting to run",
    "orthanc_advanced_rest_jobs_running": "The plugin's jobs running",
    "orthanc_advanced_rest_jobs_success": "The plugin's jobs finished with success, kept in the history",
    "orthanc_advanced_rest_jobs_failure": "The plugin's jobs finished with a failure, kept in the history",
}


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


def headline(counts):
    """The pushed values: the plugin's jobs by state, one value per HEADLINE name; `counts()` -> {(type,
    state): count}, the source orthanc_jobs reads (see families.tally)."""
    values = dict.fromkeys(HEADLINE, 0)
    for (_, state), count in counts().items():
        key = "orthanc_advanced_rest_jobs_%s" % (state or "").lower()
        if key in values:
            values[key] += count
    return values


class HeadlineCollector:
    """The HEADLINE values as gauges with HELP and TYPE, read from `values()` on each scrape."""

    def __init__(self, values):
        self._values = values  # () -> {name: value}, the same callable the Pusher reads

    def describe(self):
        return [GaugeMetricFamily(name, text) for name, text in HEADLINE.items()]

    def collect(self):
        values = self._values()
        for name, text in HEADLINE.items():
            yield GaugeMetricFamily(name, text, value=values.get(name, 0))
