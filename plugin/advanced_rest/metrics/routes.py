"""GET {Root}/metrics, and GET /tools/metrics-prometheus: the core's lines followed by the plugin's."""
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..web import Response


class MetricsApi:
    """The exposition routes; with Orthanc's metrics switched off, only what the core serves."""

    def __init__(self, metrics, core_text):
        self._metrics = metrics
        self._core_text = core_text  # () -> the core's /tools/metrics-prometheus (bytes)

    def own(self, request):
        if not self._metrics.enabled():
            return Response(b"", CONTENT_TYPE_LATEST)
        body, mime = self._metrics.exposition(request.headers.get("accept", ""))
        return Response(body, mime)

    def core(self, request):
        core = self._core_text()
        if not self._metrics.enabled():
            return Response(core, CONTENT_TYPE_LATEST)
        if core and not core.endswith(b"\n"):
            core += b"\n"
        # One document: the core's untyped samples (their timestamps kept), then our families.
        return Response(core + self._metrics.exposition()[0], CONTENT_TYPE_LATEST)
