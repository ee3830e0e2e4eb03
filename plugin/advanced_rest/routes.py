"""The plugin's route table: which handler answers which pattern, under {Root} and (with
ServeCoreRoutes) at the core's paths, then {Root}/openapi.json describing every one of them."""
import logging
import re

from . import openapi
from .web import json_response

logger = logging.getLogger(__name__)


def serve(router, settings, create_dicom, jobs, metrics_api, system, webhooks=None):
    """Add to `router` every route `settings` enable, and {Root}/openapi.json describing them.

    `create_dicom` and `system` are handlers, `jobs` a JobsApi, `metrics_api` a MetricsApi, `webhooks` a
    WebhooksApi (or None).
    """
    own = re.escape(settings.root)
    router.add(own + "/system", {"GET": system})
    router.add(own + "/metrics", {"GET": metrics_api.own})
    for root in [own] + ([""] if settings.serve_core_routes else []):
        router.add(root + "/tools/create-dicom", {"POST": create_dicom})
        for suffix, handlers in jobs.routes(own=root == own):
            router.add(root + suffix, handlers)
    for suffix, handlers in (webhooks.routes() if webhooks is not None else []):
        router.add(own + suffix, handlers)
    if settings.serve_core_routes:
        router.add("/tools/metrics-prometheus", {"GET": metrics_api.core})
    try:
        description = json_response(openapi.document(router.registered + [(own + "/openapi.json", ["GET"])],
                                                     settings.root))
        router.add(own + "/openapi.json", {"GET": lambda request: description})
    except KeyError as missing:  # a route without its description: everything else still serves
        logger.error("No OpenAPI description for %s: not serving openapi.json", missing)
