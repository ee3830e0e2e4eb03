"""The cluster's change feed ({Root}/jobs/changes): one numbered log of every move of the cluster's
plugin jobs (written by the moves themselves, in their transactions) and of each replica's core jobs."""
import logging
import time

from psycopg.types.json import Jsonb

from .. import model
from . import sql
from .database import CHANNEL, KEPT_CHANGES

logger = logging.getLogger(__name__)


class ClusterFeed:
    """The feed as the routes and the core-jobs watcher use it (the same interface as changes.ChangeFeed)."""

    def __init__(self, db, on_change=None, in_move=None):
        self._db = db  # database.Database: its run/moving/wait_change, and the replica's name
        self._on_change = on_change  # (job JSON) -> None once a core job's end is recorded
        self._in_move = in_move  # (conn, job JSON, change number) -> None, in the change's transaction
        self._seen = {}  # core job id -> (State, Progress) last recorded

    def record(self, job, origin):
        """A core job's change (state or progress moved), in the cluster's feed with this replica's name."""
        key = (job.get("State"), job.get("Progress"))
        if self._seen.get(job.get("ID")) == key:
            return
        change = {"ID": job.get("ID"), "Type": job.get("Type"), "State": job.get("State"),
                  "Progress": job.get("Progress"), "Timestamp": job.get("Timestamp"),
                  "Origin": origin, "Replica": self._db.replica}

        def move(conn):
            seq = insert_change(conn, change)
            if self._in_move is not None:
                self._in_move(conn, job, seq)
            conn.execute(sql.NOTIFY, (CHANNEL, "change"))
        self._db.moving(move)  # again while the feed's lock is busy; recorded as seen once in the feed
        self._seen[job.get("ID")] = key
        if job.get("State") in model.FINISHED and self._on_change is not None:
            self._on_change(job)

    def last(self):
        row = self._db.run(sql.LAST_CHANGE, fetch="one")
        return row[0]

    def wait_after(self, seq, timeout):
        generation = self._db.generation
        deadline = time.monotonic() + timeout
        while True:
            last = self.last()
            remaining = deadline - time.monotonic()
            if last > seq or remaining <= 0:
                return last
            generation = self._db.wait_change(generation, min(remaining, 0.5))

    def since(self, since, timeout, limit=1000):
        """{"Changes", "Last", "Done"} after `since`, waiting up to `timeout` s for one."""
        self.wait_after(since, timeout)
        found = self._db.run(sql.CHANGES_SINCE, (since, limit + 1), fetch="all")
        changes = [dict(change, Seq=seq) for seq, change in found[:limit]]
        if changes:
            last = changes[-1]["Seq"]
        else:  # as a single server: a `since` beyond the newest change answers the newest number
            newest = self.last()
            last = since if since <= newest else newest
        self._db.run(sql.TRIM_CHANGES, (KEPT_CHANGES,))
        return {"Changes": changes, "Last": last, "Done": len(found) <= limit}

    def forget(self, job_id):
        """A core job left the core's history: stop remembering what was last recorded of it."""
        self._seen.pop(job_id, None)


def insert_change(conn, change):
    """Number and store one change, in the caller's transaction; its number. The lock, held until that transaction
    ends, makes numbers commit in order and with no gap: a reader following `since` never skips a change
    committed after a higher-numbered one, and a rolled-back move leaves no hole."""
    conn.execute(sql.LOCK_CHANGES)
    return conn.execute(sql.INSERT_CHANGE, (Jsonb(change),)).fetchone()[0]
