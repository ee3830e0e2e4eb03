"""POST /tools/create-dicom: parse, build in memory, then store everything or nothing."""
import base64
import dataclasses
import datetime
import ipaddress
import logging
import os
import time
import uuid

from .. import __version__
from ..dicomize import builder, charsets, datauri, multipart, parents, request as requests_
from ..errors import AdvancedRestError, BadRequest, RequestTooLarge
from ..web import json_response
from . import job, storing

logger = logging.getLogger(__name__)


SOFTWARE_VERSION = "advanced-rest %s" % __version__


def _content_kind(parsed):
    """What a request embeds, for metrics: "series", "none", or the data URI's MIME type."""
    if isinstance(parsed.content, tuple):
        return "series"
    if isinstance(parsed.content, str):
        return datauri.mime_of(parsed.content) or "other"
    if parsed.legacy and isinstance(parsed.tags.get("PixelData"), str):
        return datauri.mime_of(parsed.tags["PixelData"]) or "other"
    return "none"


def requester(headers, authenticated_users):
    """Who asked, as CreatorMetadata records it: `user=` the HTTP user Orthanc authenticated, `forwarded-for=`
    the client's address a proxy in front of Orthanc gave; values with no `;`, `=` or control character.

    The plugin SDK hands a route neither Orthanc's user nor the client's address. A Basic header names the
    user whose password the core checked only while its authentication is in force (`authenticated_users`,
    Settings' names; empty otherwise, when anyone may write one). Each proxy appends to X-Forwarded-For the
    address it saw: only the last entry is vouched for, by the proxy in front of Orthanc; the others are
    the client's say.
    """
    parts = []
    user = _basic_user(headers.get("authorization", ""))
    if user and user in authenticated_users and _writable(user):
        parts.append("user=%s" % user)
    address = _last_hop(headers.get("x-forwarded-for", ""))
    if address:
        parts.append("forwarded-for=%s" % address)
    parts.append("via=advanced-rest")
    return "; ".join(parts)


def _basic_user(authorization):
    """The user name of a Basic Authorization header ("" when none can be read)."""
    if authorization[:6].lower() != "basic ":
        return ""
    try:
        return base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8").split(":", 1)[0]
    except (ValueError, UnicodeDecodeError):
        return ""


def _last_hop(forwarded):
    """The last entry of an X-Forwarded-For header if it is an IP address, as given ("" otherwise)."""
    entry = forwarded.rsplit(",", 1)[-1].strip(" \t")
    try:
        address = ipaddress.ip_address(entry)
    except ValueError:
        return ""
    # A zone (fe80::1%eth0) names the proxy's own interface, and may be any text: not a client's address.
    return entry if not getattr(address, "scope_id", None) and _writable(entry) else ""


def _writable(value):
    """Whether `value` may be written between CreatorMetadata's `; ` and `=` as it is."""
    return value.isprintable() and ";" not in value and "=" not in value


def _random_uuid():
    """The integer of a random (version 4) UUID, as uuid.uuid4().int, without building a UUID object
    (its checks cost more than the random bytes, four times per request)."""
    number = int.from_bytes(os.urandom(16), "big")
    return (number & ~(0xF000 << 64) | (4 << 76)) & ~(0xC000 << 48) | (0x8000 << 48)


def new_uid():
    """A new UID under the 2.25 root (derived from a random UUID, no registered root needed)."""
    return "2.25.%d" % _random_uuid()


def new_patient_id():
    """A new random PatientID, as the core makes one: a UUID's text."""
    text = "%032x" % _random_uuid()
    return "%s-%s-%s-%s-%s" % (text[:8], text[8:12], text[12:16], text[16:20], text[20:])


@dataclasses.dataclass(frozen=True)
class Services:
    """The calls into Orthanc that create-dicom needs."""

    rest_get_json: object  # uri -> parsed JSON
    rest_post: object  # (uri, body bytes) -> bytes
    rest_delete: object  # uri -> None
    default_encoding: object  # () -> Orthanc encoding name
    rest_put: object = None  # (uri, body bytes) -> None; for AdvancedRest.CreatorMetadata
    http_store: object = None  # storing.HttpStore: synchronous requests store through Orthanc's HTTP server first
    received: object = None  # metrics.received.ReceivedCounter: told what is stored, to count it without a read-back


class CreateDicom:
    """The create-dicom handler, bound to settings, dictionary, Orthanc's services and the plugin's jobs (interfaces.Jobs)."""

    def __init__(self, settings, dictionary, services, jobs=None, clock=None, uid=new_uid, observe=None):
        self._observe = observe  # (content kind, HTTP status, seconds) after each request
        self._settings = settings
        self._dictionary = dictionary
        self._services = services
        self._jobs = jobs
        self._clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self._uid = uid
        self._limits = requests_.Limits(settings.max_sequence_depth, settings.max_elements,
                                        settings.max_instances_per_request)

    def environment(self, seed=None, now=None, encoding=None):
        """The builder's environment for one request (now, current default encoding).

        With a `seed` (a job's), identifiers are derived from it rather than random;
        a job restored after a restart gives its own `now` and `encoding` too.
        """
        new, item, patient = (self._uid, None, new_patient_id) if seed is None \
            else job.seeded_identifiers(seed)
        return builder.Environment(
            dictionary=self._dictionary,
            default_encoding=charsets.from_name(encoding or self._services.default_encoding()),
            default_private_creator=self._settings.default_private_creator,
            max_image_pixels=self._settings.max_image_pixels,
            max_image_bytes=self._settings.max_image_bytes,
            strict=self._settings.strict_dicom,
            software_version=SOFTWARE_VERSION,
            now=now or self._clock(),
            new_uid=new,
            new_patient_id=patient,
            item_uid=item,
        )

    def plan(self, parsed, seed=None):
        """The checked Plan of a parsed request (its parent looked up)."""
        parent = None
        if parsed.parent is not None:
            parent = parents.resolve(parsed.parent, self._services.rest_get_json)
        return builder.Plan(parsed, self.environment(seed), parent)

    def _store_with(self, requester, headers=None):
        """POST /instances (as the requester of `headers` through Orthanc's HTTP server where the SDK would
        keep the GIL; a job, which has no requester's headers, through the SDK), then (with
        AdvancedRest.CreatorMetadata) who asked, in that metadata."""
        http_store = self._services.http_store if headers is not None else None
        # Where Orthanc transcodes what it receives, it may store another transfer syntax than the file's.
        received = None if self._settings.ingest_transcoding else self._services.received
        store = storing.store_with(self._services.rest_post, http_store, headers, received)
        name = self._settings.creator_metadata
        if not name:
            return store
        return storing.recording_requester(store, self._services.rest_put, self._services.rest_delete, name,
                                           requester)

    def _runner(self, parsed, env, parent, payload):
        plan = builder.Plan(parsed, env, parent)
        item_tags = [item.tags for item in parsed.content] if isinstance(parsed.content, tuple) else []
        user_sop_uid = builder.SOP_INSTANCE_UID in builder.requested_tags(self._dictionary, parsed.tags, *item_tags)
        # A job waits out a short outage of Orthanc's database; a synchronous request answers it (503).
        # Its request, once saved, is not kept while it waits: its next step re-creates the plan (runner_from).
        return job.CreateDicomRunner(plan, storing.patient(self._store_with(payload.get("Requester", ""))),
                                     storing.patient(self._services.rest_delete), payload, user_sop_uid,
                                     replan=self.runner_from)

    @staticmethod
    def _parse(body, limits, content_type=None):
        """The CreateRequest of a body: JSON, or multipart/related whose parts are the files (multipart.py)."""
        if multipart.is_multipart(content_type):
            request_body, files = multipart.split(body, content_type, limits.max_instances)
            return requests_.parse(request_body, limits, files)
        return requests_.parse(body, limits)

    def runner_from(self, payload):
        """The runner of a job saved with `payload` (see submit), for a restart."""
        # Accepted under the limits of its day: only the crash guard (depth) applies again.
        parsed = self._parse(payload["Body"], dataclasses.replace(self._limits, max_elements=2 ** 62,
                                                                  max_instances=2 ** 62),
                             payload.get("ContentType"))
        env = self.environment(payload["Seed"], datetime.datetime.fromisoformat(payload["Now"]), payload["Encoding"])
        parent = parents.Parent(**payload["Parent"]) if payload.get("Parent") else None
        return self._runner(parsed, env, parent, payload)

    def submit(self, parsed, body, requester="", content_type=None):
        """Queue the request as a CreateDicom job, saved before its id is answered (the core's answer
        to an asynchronous call).

        Raises:
            QueueFull: AdvancedRest.MaxPendingJobs plugin jobs are unfinished, or the body would take what
                they hold over AdvancedRest.MaxPendingBytes (nothing is stored).
            RequestTooLarge: the body alone is over AdvancedRest.MaxPendingBytes.
        """
        if self._jobs is None:
            raise BadRequest("Asynchronous create-dicom needs the plugin's jobs")
        seed = str(uuid.uuid4())
        env = self.environment(seed)
        parent = None
        if parsed.parent is not None:
            parent = parents.resolve(parsed.parent, self._services.rest_get_json)
        payload = {
            "Body": body, "Seed": seed, "Now": env.now.isoformat(), "Encoding": env.default_encoding.name,
            "Parent": {"level": parent.level, "tags": parent.tags} if parent else None, "Requester": requester,
        }
        if multipart.is_multipart(content_type):  # its files are parts of the body: split again when it runs
            payload["ContentType"] = content_type
        runner = self._runner(parsed, env, parent, payload)
        job_id = self._jobs.submit(job.JOB_TYPE, runner, parsed.priority)
        return json_response({"ID": job_id, "Path": "/jobs/%s" % job_id})

    def __call__(self, request):
        began, kind, status = time.perf_counter(), "other", 500
        try:
            if len(request.body) > self._settings.max_request_bytes:
                raise RequestTooLarge("The body has %d bytes, more than AdvancedRest.MaxRequestBytes (%d)"
                                      % (len(request.body), self._settings.max_request_bytes))
            parsed = self._parse(request.body, self._limits, request.headers.get("content-type"))
            kind = _content_kind(parsed)
            response = self._answer(parsed, request.body, request.headers)
            status = 200
            return response
        except AdvancedRestError as error:
            status = error.http_status
            raise
        finally:
            if self._observe is not None:
                self._observe(kind, status, time.perf_counter() - began)

    def _answer(self, parsed, body, headers):
        if parsed.asynchronous:  # saved with the job, whatever CreatorMetadata says when it runs
            return self.submit(parsed, body, requester(headers, self._settings.authenticated_users),
                               headers.get("content-type"))
        plan = self.plan(parsed)
        asked_by = requester(headers, self._settings.authenticated_users) if self._settings.creator_metadata else ""
        answers = storing.store_all(plan, self._store_with(asked_by, headers), self._services.rest_delete)
        if plan.is_series:
            series = answers[-1]["ParentSeries"]
            return json_response({"ID": series, "Path": "/series/%s" % series, "Status": "Success"})
        return json_response(answers[0])
