"""GET {Root}/metrics, and GET /tools/metrics-prometheus: the core's lines followed by the plugin's."""
import re

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..web import Response
from .push import HEADLINE, HeadlineCollector

_NAME = re.compile(rb"[^\s{]+")


def without_names(text, names):
    """The exposition `text` (bytes) less every sample, HELP and TYPE line of a metric in `names`."""
    names = {name.encode("ascii") for name in names}
    kept = []
    for line in text.splitlines(keepends=True):
        words = line.split()
        if words[:1] == [b"#"]:
            name = words[2] if len(words) > 2 and words[1] in (b"HELP", b"TYPE") else None
        else:
            match = _NAME.match(line.lstrip())
            name = match.group(0) if match else None
        if name not in names:
            kept.append(line)
    return b"".join(kept)


class MetricsApi:
    """The exposition routes; with Orthanc's metrics switched off, only what the core serves."""

    def __init__(self, metrics, core_text, headline):
        self._metrics = metrics
        self._core_text = core_text  # () -> the core's /tools/metrics-prometheus (bytes)
        # headline: () -> {name: value}, what the Pusher sets in the core's registry. Served typed on
        # this route only, not on {Root}/metrics: a Prometheus scraping the core's route (with
        # ServeCoreRoutes off) and ours must see each value once.
        self._headline = CollectorRegistry()
        self._headline.register(HeadlineCollector(headline))

    def own(self, request):
        if not self._metrics.enabled():
            return Response(b"", CONTENT_TYPE_LATEST)
        body, mime = self._metrics.exposition(request.headers.get("accept", ""))
        return Response(body, mime)

    def core(self, request):
        core = self._core_text()
        if not self._metrics.enabled():
            return Response(core, CONTENT_TYPE_LATEST)
        # The core's copies of the pushed values have no HELP or TYPE and lag by up to PUSH_EVERY:
        # each is served once, as a gauge computed now from the source the push reads.
        core = without_names(core, HEADLINE)
        if core and not core.endswith(b"\n"):
            core += b"\n"
        # One document: the core's untyped samples (their timestamps kept), then our families.
        return Response(core + generate_latest(self._headline) + self._metrics.exposition()[0],
                        CONTENT_TYPE_LATEST)
