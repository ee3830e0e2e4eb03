"""Storing a request's files in Orthanc: all of them or none, and who asked when configured."""
import json
import logging
import threading
import time

from ..errors import AdvancedRestError, OrthancError
from ..metrics import received as received_

logger = logging.getLogger(__name__)


DATABASE_UNAVAILABLE = 36  # Orthanc's "The database is currently not available": transient
TRANSIENT_WAIT = 120.0  # seconds a job waits for Orthanc's database to come back, per call
# Orthanc's "Bad sequence of calls": what a call answers when the connection to the database broke
# inside its own transaction (seen with Orthanc 1.10.1 and PostgreSQL plugin 4.0: "Cannot commit a
# non-existing transaction"); the next calls answer DATABASE_UNAVAILABLE until it is back. Also a
# real error, so tried again only this many times.
BROKEN_TRANSACTION = 6
BROKEN_TRANSACTION_TRIES = 3


def patient(call, wait=TRANSIENT_WAIT, sleep=time.sleep, clock=time.monotonic):
    """`call`, tried again while Orthanc answers that its database is unavailable (a PostgreSQL
    restart, a failover), for up to `wait` seconds: a job outlives a short outage instead of
    failing in the middle (and failing to undo its work, for the same reason). A call whose
    transaction the outage broke is tried again too, a few times (BROKEN_TRANSACTION). The calls so
    wrapped are POST /instances of a job's own files (a repeat answers AlreadyStored, which the job
    counts as its own) and DELETE of its instances."""
    def patient_call(*args):
        deadline, pause, broken = clock() + wait, 0.5, 0
        while True:
            try:
                return call(*args)
            except AdvancedRestError as error:
                if error.code == BROKEN_TRANSACTION and broken < BROKEN_TRANSACTION_TRIES:
                    broken += 1
                elif error.code != DATABASE_UNAVAILABLE:
                    raise
                if clock() + pause > deadline:
                    raise
                logger.warning("Orthanc's database is unavailable (error %d); trying again in %.1f s", error.code,
                               pause)
                sleep(pause)
                pause = min(pause * 2, 5.0)
    return patient_call


class NotStored(Exception):
    """HttpStore stored nothing (off, no share free, Orthanc's HTTP server unreachable or refusing): the SDK
    stores the file instead."""


LARGE_FILE = 16 * 1024 * 1024  # bytes of a DICOM file from which HttpStore leaves the store to the SDK


class HttpStore:
    """POST /instances through Orthanc's own HTTP server on loopback, as the requester (issue 26).

    Where the Python plugin keeps the GIL while Orthanc answers an SDK call (plugin 4.0 to 4.2, or later ones
    with Python.AllowThreads off: host.py's self-test), `RestApiPost('/instances')` stops every other Python
    thread while Orthanc stores; a socket releases it. The store then happens as the core's own create-dicom does it, by a REST request of the
    user: `Origin` RestApi, `HttpUsername` hers, `RemoteIP` 127.0.0.1 (README, create-dicom). Each holds a
    second HTTP thread: at most `permits` at once (AdvancedRest.LoopbackStoreShare), never waited for.

    `request(method, path, headers, body)` is host.Loopback.request; `identity(headers)` access.identity.
    `active` is set once the self-test found the GIL kept (before it, and elsewhere, the SDK stores).
    """

    def __init__(self, request, identity, permits):
        self._request, self._identity = request, identity
        self.permits = permits
        self._permits = threading.BoundedSemaphore(permits) if permits > 0 else None
        self.active = False
        self._told = set()  # the kinds of fallback already logged at WARNING or INFO (then DEBUG)

    def _fall_back(self, kind, level, message, *args):
        if kind in self._told:
            level = logging.DEBUG
        self._told.add(kind)
        logger.log(level, message + ": stored through the SDK instead", *args)
        raise NotStored(kind)

    def store(self, data, headers):
        """The parsed answer of POST /instances of `data` (a DICOM file) made with the requester's `headers`.

        Raises:
            NotStored: it stored nothing: off, no share free, unreachable, or refused (401/403: the core's
                create-dicom needs no right on POST /instances, so neither does the plugin's).
            OrthancError: Orthanc refused the file (its OrthancStatus, as the SDK's call raises it).
        """
        if not self.active or self._permits is None:
            raise NotStored("off")
        if len(data) >= LARGE_FILE:
            # Orthanc's HTTP server holds one more copy of the file than the SDK's store (issue 26: 5x the body
            # instead of 4.25x on Orthanc 1.10.1); a file this large is rare, and its store long anyway.
            raise NotStored("large")
        if not self._permits.acquire(blocking=False):
            logger.debug("AdvancedRest.LoopbackStoreShare of the HTTP threads already store: through the SDK")
            raise NotStored("busy")
        try:
            headers = dict(self._identity(headers or {}), **{"Content-Type": "application/dicom"})
            try:
                status, body, _ = self._request("POST", "/instances", headers, data)
            except (TimeoutError, ConnectionError) as error:
                # Refused or unreachable: nothing stored. No answer in time: maybe stored, then the SDK
                # answers AlreadyStored with the same ID (the same file), which rollback leaves alone.
                self._fall_back("unreachable", logging.WARNING, "create-dicom could not store through Orthanc's "
                                "HTTP server (%s)", type(error).__name__)
        finally:
            self._permits.release()
        if status == 200:
            self._told.discard("unreachable")
            return json.loads(body)
        if status in (401, 403):
            self._fall_back("refused", logging.INFO, "The site's rules refuse this user POST /instances "
                            "(HTTP %d through Orthanc's HTTP server)", status)
        try:
            code = json.loads(body).get("OrthancStatus")
        except (ValueError, AttributeError):
            code = None
        if not isinstance(code, int) or isinstance(code, bool):  # no error body (HttpDescribeErrors false)
            self._fall_back("undescribed", logging.INFO, "POST /instances through Orthanc's HTTP server answered "
                            "HTTP %d without Orthanc's error", status)
        raise OrthancError("/instances", code=code)


# The Origin metadata Orthanc records for each way of storing (checked on Orthanc 1.10.1 and 1.13.0).
ORIGIN_HTTP = "RestApi"  # HttpStore: a REST request of the user
ORIGIN_SDK = "Plugins"  # RestApiPost


def store_with(rest_post, http_store=None, headers=None, received=None):
    """A store callable `store(data, identity=None)`: POST /instances, answer parsed; through `http_store` first
    (an HttpStore, with the requester's `headers`), through the SDK when that stored nothing.

    With `received` (metrics.received.ReceivedCounter), a file whose `identity` the builder gave
    (builder.Identity) is counted from it, not read back: expected before the store, then stored with the
    Origin of the way it went when Orthanc answers Success with the id expected, else cancelled.
    """
    def sent(data):
        if http_store is not None:
            try:
                return http_store.store(data, headers), ORIGIN_HTTP
            except NotStored:
                pass
        return json.loads(rest_post("/instances", data)), ORIGIN_SDK

    def store(data, identity=None):
        if received is None or identity is None:
            return sent(data)[0]
        instance_id = received_.orthanc_id(identity.patient_id, identity.study_uid, identity.series_uid,
                                           identity.sop_uid)
        if not received.expect(instance_id, identity.modality, identity.transfer_syntax):
            return sent(data)[0]
        try:
            answer, origin = sent(data)
        except BaseException:
            received.cancel(instance_id)  # stored or not, the change (if any) reads it back
            raise
        if answer.get("Status") == "Success" and answer.get("ID") == instance_id:
            received.stored(instance_id, origin)
        else:  # AlreadyStored or FilteredOut: no change comes; another id: not the instance expected
            received.cancel(instance_id)
        return answer
    return store


def recording_requester(store, rest_put, delete, metadata, requester):
    """`store`, then `requester` written into the instance's `metadata` (AdvancedRest.CreatorMetadata).

    An instance whose metadata cannot be written is removed again, and the error raised.
    """
    def store_and_record(data, identity=None):
        answer = store(data, identity)
        if answer.get("Status") == "Success":
            try:
                rest_put("/instances/%s/metadata/%s" % (answer["ID"], metadata), requester.encode("utf-8"))
            except AdvancedRestError:
                remove_stored([answer], delete)
                raise
        return answer
    return store_and_record


def store_all(plan, store, delete):
    """Build and store the plan's files one at a time (one file in memory at once), all or none:
    what was stored is deleted if a file fails to build or store; the answers of POST /instances."""
    answers = []
    try:
        for index in range(plan.count):
            data = plan.file(index)
            answers.append(store(data, plan.identity))
    except Exception:
        remove_stored(answers, delete)
        raise
    return answers


def remove_stored(answers, delete, ours=("Success",)):
    """Delete the instances that POST /instances `answers` say were stored by us (best effort)."""
    for answer in answers:
        if answer.get("Status") in ours:
            try:
                delete("/instances/%s" % answer["ID"])
            except AdvancedRestError:
                logger.exception("Could not remove instance %s of a failed request", answer["ID"])
