"""The core jobs of every replica of the cluster: each replica publishes its own core's jobs for the
others to list, and carries out what the others ask of them (a core job can only be acted on by
the Orthanc that runs it). A request on a healthy replica waits for a frozen owner `timeout`
seconds at most, then answers 503.
"""
import json
import logging
import time

from ...errors import AdvancedRestError, DatabaseUnavailable, UnknownJob
from . import sql
from .database import CHANNEL

logger = logging.getLogger(__name__)

ACT_WITHIN = 5.0  # seconds the replica asked waits for the replica that runs a core job


class CorePeers:
    """This replica's part in the cluster's core jobs, on its connections and notifications (`db`, a
    database.Database).

    `core_action(job id, action)` carries an action (or "delete") out on this replica's core; it
    raises AdvancedRestError as the core refuses.
    """

    def __init__(self, db, core_action):
        self._db = db
        self._core_action = core_action
        self._published = None  # the core's jobs as last published

    @property
    def replica(self):
        return self._db.replica

    def publish_core(self, jobs):
        """This replica's core jobs, for the others to list (written only when they changed)."""
        if jobs == self._published:
            return
        with self._db.transaction() as conn:
            conn.execute(sql.UNPUBLISH_CORE, (self.replica,))
            for job in jobs:
                conn.execute(sql.PUBLISH_CORE,
                             (self.replica, job.get("ID"), json.dumps(dict(job, Replica=self.replica))))
        self._published = jobs

    def withdraw(self):
        """This replica stops: its core jobs leave the cluster's list."""
        self._db.run(sql.UNPUBLISH_CORE, (self.replica,))

    def peer_core_jobs(self):
        """The core jobs of the other live replicas (each with its "Replica")."""
        return [row[0] for row in self._db.run(sql.PEER_CORE_JOBS, (self.replica, self._db.lease),
                                                    fetch="all")]

    def peer_core_job(self, job_id):
        """A core job of another live replica, or None."""
        row = self._db.run(sql.PEER_CORE_JOB, (self.replica, self._db.lease, job_id), fetch="one")
        return row[0] if row else None

    def act_on_peer_core_job(self, job_id, action, timeout=ACT_WITHIN):
        """Have the replica running a core job carry out `action` (or "delete") on it; its answer.

        Raises:
            UnknownJob: no live replica runs it. AdvancedRestError: what its core answered, or 503 when
            it did not answer within `timeout` s (the request is then withdrawn).
        """
        job = self.peer_core_job(job_id)
        if job is None:
            raise UnknownJob("No job found with this id: %s" % job_id)
        owner = job["Replica"]
        row = self._db.run(sql.ASK_CORE_ACTION, (job_id, owner, action), fetch="one")
        self._db.run(sql.NOTIFY, (CHANNEL, "action"))
        deadline = time.monotonic() + timeout
        generation = self._db.generation
        try:
            while time.monotonic() < deadline:
                done = self._db.run(sql.CORE_ACTION_DONE, (row[0],), fetch="one")
                if done is not None:
                    status, details = done
                    if status != 200:
                        raise AdvancedRestError("Replica %s: %s" % (owner, details),
                                                code=8 if status == 400 else -1, status=status)
                    return
                generation = self._db.wait_change(generation, 0.1)
        finally:
            self._db.run(sql.FORGET_CORE_ACTION, (row[0],))
        raise DatabaseUnavailable("Replica %s, which runs core job %s, did not answer within %g s"
                                  % (owner, job_id, timeout))

    def take_actions(self):
        """Carry out what other replicas asked of this replica's core jobs."""
        asked = self._db.run(sql.CORE_ACTIONS_ASKED, (self.replica,), fetch="all")
        for seq, job_id, action in sorted(asked):
            status, details = 200, ""
            try:
                self._core_action(job_id, action)
            except AdvancedRestError as error:
                # Over HTTP the core answers 400 for an unknown job and an illegal move alike; through
                # the SDK the same refusal may carry another code: answer what its HTTP route would.
                status = 400 if error.http_status < 500 else error.http_status
                details = "the core cannot %s job %s (unknown, or not allowed in its state)" % (action, job_id) \
                    if status == 400 else (error.details or error.message)
            self._db.run(sql.CORE_ACTION_ANSWERED, (status, details, seq))
        if asked:
            self._db.run(sql.NOTIFY, (CHANNEL, "acted"))
