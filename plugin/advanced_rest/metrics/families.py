"""The plugin's metric families, on a registry of their own, and their exposition."""
import collections

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from . import labels

# Few buckets: rendering them is most of a scrape's cost (prometheus-client formats each line).
DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5)
JOB_BUCKETS = (0.1, 1, 10, 60, 600, 3600)
class ClusterCollector:
    """orthanc_advanced_rest_cluster_events_total{event}: this replica's claims, takeovers and failed lease
    renewals (a counter per replica: summed over the replicas, the cluster's)."""

    def __init__(self, counters):
        self._counters = counters

    def collect(self):
        family = CounterMetricFamily("orthanc_advanced_rest_cluster_events", "Events of the cluster view on this "
                                     "replica: jobs claimed, jobs taken over from a dead replica, lease renewals "
                                     "that failed", labels=["event"])
        for event in ("claims", "takeovers", "renewals_failed"):
            family.add_metric([event], float(self._counters.get(event, 0)))
        yield family


WEBHOOK_BUCKETS = (0.05, 0.1, 0.5, 1, 5, 60, 3600)


class OutboxCollector:
    """The webhooks outbox at scrape: deliveries pending and the oldest one's age (in a cluster, from the
    one replica that counts the cluster's: `counted()`)."""

    def __init__(self, depth, counted, clock):
        self._depth, self._counted, self._clock = depth, counted, clock

    def collect(self):
        pending = GaugeMetricFamily("orthanc_advanced_rest_webhook_outbox_pending", "Webhook deliveries "
                                    "waiting to be delivered")
        oldest = GaugeMetricFamily("orthanc_advanced_rest_webhook_oldest_pending_seconds", "Age of the oldest "
                                   "webhook delivery waiting (0 when none)")
        if self._counted():
            count, created = self._depth()
            pending.add_metric([], float(count))
            oldest.add_metric([], max(0.0, self._clock() - created) if created is not None else 0.0)
        yield pending
        yield oldest


class RetriesCollector:
    """The jobs held in Retry (waiting, or paused there) by type, and how late the oldest due one is."""

    def __init__(self, gauges):
        self._gauges = gauges

    def collect(self):
        waiting = GaugeMetricFamily("orthanc_advanced_rest_retries_waiting", "Failed jobs waiting in Retry (or "
                                    "paused there), by type", labels=["type"])
        late = GaugeMetricFamily("orthanc_advanced_rest_retry_oldest_due_seconds", "How long ago the oldest due "
                                 "retry was due (0 when none is)")
        counts, seconds = self._gauges()
        for job_type, count in sorted(counts.items()):
            waiting.add_metric([job_type], float(count))
        late.add_metric([], float(seconds))
        yield waiting
        yield late


def tally(jobs):
    """{(type, state): count} of a list of job JSONs: what a source of orthanc_jobs returns."""
    return collections.Counter((job.get("Type"), job.get("State")) for job in jobs)


class JobsCollector:
    """orthanc_jobs{type, state}: counted on each scrape by its sources, callables returning {(type, state):
    count} (one server: its jobs in memory; a cluster: the cluster's jobs from the one replica that reports
    them; the core's jobs as last seen)."""

    def __init__(self, sources):
        self.sources = sources

    def describe(self):
        return [GaugeMetricFamily("orthanc_jobs", "Jobs of the core and of the plugin, by type and state",
                                  labels=["type", "state"])]

    def collect(self):
        counts = collections.Counter()
        types = set()
        for source in self.sources:
            for (job_type, state), count in source().items():
                job_type = labels.bounded(job_type, labels.JOB_TYPES)
                types.add(job_type)
                counts[(job_type, labels.bounded(state, labels.JOB_STATES))] += count
        family = GaugeMetricFamily("orthanc_jobs", "Jobs of the core and of the plugin, by type and state",
                                   labels=["type", "state"])
        for job_type in sorted(types):
            for state in sorted(labels.JOB_STATES):
                family.add_metric([job_type, state], counts[(job_type, state)])
        yield family


class Metrics:
    """Every family the plugin publishes; recording does nothing while `enabled()` is false."""

    def __init__(self, enabled, job_sources=()):
        # The _created samples would add a line per series that Prometheus does not use.
        # (A setting of prometheus-client's, set once at start: this registry is the process's only one.)
        disable_created_metrics()
        self.enabled = enabled
        self.registry = CollectorRegistry()
        registry = self.registry
        self._create_dicom = Counter("orthanc_create_dicom_requests", "create-dicom requests answered by the "
                                     "plugin, by content type and HTTP status", ["content_type", "status"],
                                     registry=registry)
        self._create_dicom_seconds = Histogram("orthanc_create_dicom_duration_seconds", "Time to answer a "
                                               "create-dicom request", ["content_type"], buckets=DURATION_BUCKETS,
                                               registry=registry)
        self._requests = Counter("orthanc_plugin_requests", "Requests to the plugin's routes",
                                 ["route", "method", "status"], registry=registry)
        self._request_seconds = Histogram("orthanc_plugin_request_duration_seconds", "Time to answer a request "
                                          "to one of the plugin's routes", ["route"], buckets=DURATION_BUCKETS,
                                          registry=registry)
        self._job_seconds = Histogram("orthanc_job_duration_seconds", "Effective run time of finished jobs "
                                      "(core and plugin)", ["type", "state"], buckets=JOB_BUCKETS,
                                      registry=registry)
        self._instances = Counter("orthanc_instances_received", "Instances stored by Orthanc, by origin, "
                                  "modality and transfer syntax", ["origin", "modality", "transfer_syntax"],
                                  registry=registry)
        self._jobs = JobsCollector(list(job_sources))
        registry.register(self._jobs)
        # (family, label values) -> child: labels() validates and locks on every call, a cost on each
        # request; the label values come from bounded sets (labels.py), so this stays small.
        self._children = {}

    def _child(self, family, *values):
        child = self._children.get((family, values))
        if child is None:
            child = self._children[(family, values)] = family.labels(*values)
        return child

    def add_cluster(self, counters):
        """The cluster view's own health: `counters` (claims, takeovers, renewals_failed), read at scrape."""
        self.registry.register(ClusterCollector(counters))

    def add_webhooks(self, depth, counted, clock):
        """The webhooks' families: `depth()` -> (pending, oldest creation time), `counted()` -> bool."""
        registry = self.registry
        self._webhook_deliveries = Counter("orthanc_advanced_rest_webhook_deliveries", "Webhook delivery "
                                           "attempts by endpoint and outcome (delivered, retried, failed)",
                                           ["endpoint", "outcome"], registry=registry)
        self._webhook_seconds = Histogram("orthanc_advanced_rest_webhook_delivery_seconds", "Time from a job's "
                                          "event to its delivery", ["endpoint"], buckets=WEBHOOK_BUCKETS,
                                          registry=registry)
        self._webhook_refused = Counter("orthanc_advanced_rest_webhook_events_refused", "Job events not queued "
                                        "for an endpoint: the outbox was full (MaxPendingDeliveries)",
                                        ["endpoint"], registry=registry)
        registry.register(OutboxCollector(depth, counted, clock))

    def webhook_attempted(self, endpoint, state, seconds):
        """One attempt's outcome: Delivered (observed with its latency), Retried or Failed."""
        if self.enabled():
            self._child(self._webhook_deliveries, endpoint, state.lower()).inc()
            if state == "Delivered":
                self._child(self._webhook_seconds, endpoint).observe(seconds)

    def webhook_refused(self, endpoint, count=1):
        if self.enabled():
            self._child(self._webhook_refused, endpoint).inc(count)

    def add_retries(self):
        """The automatic retries' counter (see retried)."""
        self._retries = Counter("orthanc_advanced_rest_retries", "Automatic retries of failed jobs, by type and "
                                "outcome (scheduled, resubmitted, succeeded, gave_up, cancelled, lost, refused)",
                                ["type", "outcome"], registry=self.registry)

    def add_retry_source(self, gauges):
        """The jobs waiting in Retry and the oldest due one's lateness: `gauges()` -> ({type: count}, seconds)."""
        self.registry.register(RetriesCollector(gauges))

    def retried(self, job_type, outcome):
        if self.enabled():
            self._child(self._retries, job_type, outcome).inc()

    def add_job_source(self, source):
        """Another source of orthanc_jobs: a callable returning {(type, state): count} (see `tally`)."""
        self._jobs.sources.append(source)

    def create_dicom(self, content_type, status, seconds):
        if self.enabled():
            label = content_type if content_type in ("series", "none") else \
                labels.bounded(content_type, labels.CONTENT_TYPES)
            self._child(self._create_dicom, label, labels.bounded(str(status), labels.STATUSES)).inc()
            self._child(self._create_dicom_seconds, label).observe(seconds)

    def request(self, route, method, status, seconds):
        if self.enabled():
            self._child(self._requests, route, labels.bounded(method, labels.METHODS),
                        labels.bounded(str(status), labels.STATUSES)).inc()
            self._child(self._request_seconds, route).observe(seconds)

    def job_finished(self, job):
        if self.enabled():
            self._job_seconds.labels(labels.bounded(job.get("Type"), labels.JOB_TYPES),
                                     labels.bounded(job.get("State"), labels.JOB_STATES)).observe(
                float(job.get("EffectiveRuntime") or 0.0))

    def instance_received(self, origin, modality, transfer_syntax):
        if self.enabled():
            self._instances.labels(labels.bounded(origin, labels.ORIGINS),
                                   labels.bounded(modality, labels.MODALITIES),
                                   labels.bounded(transfer_syntax, labels.TRANSFER_SYNTAXES)).inc()

    def exposition(self, accept=""):
        """(bytes, content type): OpenMetrics when `accept` asks for it, else the text format."""
        if "application/openmetrics-text" in (accept or ""):
            return openmetrics.generate_latest(self.registry), openmetrics.CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
