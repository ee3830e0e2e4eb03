"""Storing a request's files in Orthanc: all of them or none, and who asked when configured."""
import json
import logging
import time

from ..errors import AdvancedRestError

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


def store_with(rest_post):
    """A store callable: POST /instances, answer parsed."""
    def store(data):
        return json.loads(rest_post("/instances", data))
    return store


def recording_requester(store, rest_put, delete, metadata, requester):
    """`store`, then `requester` written into the instance's `metadata` (AdvancedRest.CreatorMetadata).

    An instance whose metadata cannot be written is removed again, and the error raised.
    """
    def store_and_record(data):
        answer = store(data)
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
            answers.append(store(plan.file(index)))
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
