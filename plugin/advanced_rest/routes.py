"""The plugin's route table: which handler answers which pattern, under {Root} and (with
ServeCoreRoutes) at the core's paths, then {Root}/openapi.json describing every one of them."""
import logging
import re

from . import openapi
from .web import json_response

logger = logging.getLogger(__name__)


# The core path whose rules govern each route of the plugin's own under {Root} that is no jobs route (those
# decide per job: jobs/routes.py), asked as the requester first (access.py); README, Access, lists them all.
GOVERNED_BY = {
    "/tools/create-dicom": ("POST", "/tools/create-dicom"),
    "/metrics": ("GET", "/tools/metrics-prometheus"),
    "/webhooks": ("GET", "/jobs"),  # and every route under it: their deliveries tell the jobs' events
}


def _guarded(access, suffix, handlers):
    """`handlers` of the route {Root}`suffix`, each checked against the core path that governs it."""
    if access is None:
        return handlers
    method, path = GOVERNED_BY.get(suffix) or GOVERNED_BY["/" + suffix.split("/")[1]]
    return {name: access.guard(handler, method, path) for name, handler in handlers.items()}


def serve(router, settings, create_dicom, jobs, metrics_api, system, webhooks=None, access=None, page=None):
    """Add to `router` every route `settings` enable, and {Root}/openapi.json describing them.

    `create_dicom` and `system` are handlers, `jobs` a JobsApi, `metrics_api` a MetricsApi, `webhooks` a
    WebhooksApi (or None), `access` an access.Access (None: nothing is asked, Orthanc's HTTP server is off),
    `page` the jobs page (ui.routes.JobsPage; None: not served). The page's files tell nothing of the core's data:
    what it shows comes through the routes above, each judged as any client's request.
    """
    own = re.escape(settings.root)
    router.add(own + "/system", {"GET": system})
    router.add(own + "/metrics", _guarded(access, "/metrics", {"GET": metrics_api.own}))
    router.add(own + "/tools/create-dicom", _guarded(access, "/tools/create-dicom", {"POST": create_dicom}))
    if settings.serve_core_routes:  # the site's filters judge these very paths
        router.add("/tools/create-dicom", {"POST": create_dicom})
    for root in [own] + ([""] if settings.serve_core_routes else []):
        for suffix, handlers in jobs.routes(own=root == own):
            router.add(root + suffix, handlers)
    for suffix, handlers in (webhooks.routes() if webhooks is not None else []):
        router.add(own + suffix, _guarded(access, suffix, handlers))
    if settings.serve_core_routes:
        router.add("/tools/metrics-prometheus", {"GET": metrics_api.core})
    for suffix, handlers in (page.routes() if page is not None else []):
        router.add(own + re.escape(suffix), handlers)
    try:
        description = json_response(openapi.document(router.registered + [(own + "/openapi.json", ["GET"])],
                                                     settings.root))
        router.add(own + "/openapi.json", {"GET": lambda request: description})
    except KeyError as missing:  # a route without its description: everything else still serves
        logger.error("No OpenAPI description for %s: not serving openapi.json", missing)
