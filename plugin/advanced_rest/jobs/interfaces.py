"""What the routes, create-dicom and the workers rely on. One server (single.SingleServer's engine.Engine,
changes.ChangeFeed) and the cluster (cluster.replica.Cluster, cluster.feed.ClusterFeed) are two
implementations of the same things; tests/unit/test_jobs_interfaces.py holds both to these signatures."""
from typing import Optional, Protocol, runtime_checkable


@runtime_checkable
class Jobs(Protocol):
    """The plugin's jobs, as the routes and create-dicom see them."""

    def submit(self, job_type, runner, priority=0, job_id=None) -> str:
        """Queue a job, durable before this returns; its id. Raises QueueFull."""

    def get(self, job_id) -> Optional[dict]:
        """A job's JSON (the core's shape), or None."""

    def ids(self) -> list:
        """Every job id, in submission order."""

    def all(self) -> list:
        """Every job's JSON, in submission order."""

    def wait(self, job_id, timeout) -> dict:
        """The job's JSON once finished, or after `timeout` s. Raises UnknownJob."""

    def act(self, job_id, action) -> None:
        """cancel, pause, resume or resubmit, durable before it returns. Raises UnknownJob, IllegalTransition."""

    def delete(self, job_id) -> None:
        """Forget a finished job. Raises UnknownJob, IllegalTransition."""


@runtime_checkable
class Feed(Protocol):
    """The numbered change feed ({Root}/jobs/changes) and what writes the core's jobs into it."""

    def record(self, job, origin) -> None:
        """A job's JSON; recorded when its state or progress moved."""

    def forget(self, job_id) -> None:
        """A job left the history: stop remembering what was last recorded of it."""

    def last(self) -> int:
        """The newest change's number."""

    def wait_after(self, seq, timeout) -> int:
        """Wait up to `timeout` s for a change numbered above `seq`; the newest number."""

    def since(self, since, timeout, limit=1000) -> dict:
        """{"Changes", "Last", "Done"} after `since`, waiting up to `timeout` s for one."""


@runtime_checkable
class Executor(Protocol):
    """What a cluster's replica (cluster.replica.Cluster) needs of the engine it owns to run its claims: each
    claimed job handed over with its claim token, and the workers' room for more. One server's engine is the
    jobs' truth and needs none of this."""

    def adopt(self, record, runner, claim=None) -> None:
        """Queue a job claimed elsewhere (its saved record, its runner), its moves checked with `claim`."""

    def idle_workers(self) -> int:
        """Workers with nothing to do: neither running nor already queued here."""

    def forget(self, job_id) -> None:
        """Drop a job without a trace (another replica took it over, or it was deleted)."""

    def mark_loaded(self) -> None:
        """What was saved is back (for a replica: at once, its jobs live in the database)."""

    def loaded(self, timeout=0.0) -> bool:
        """Whether what was saved is back, waiting up to `timeout` s."""

    def start(self) -> None:
        """Start the workers."""

    def stop(self, timeout=30.0) -> None:
        """Stop the workers after their current step."""


class Fence(Protocol):
    """A worker's move checked against the job's row before it counts (the cluster; one server has none)."""

    def __call__(self, document, move, claim):
        """engine.Verdict, or None when `claim` (the job's, from Engine.adopt) is no longer the job's."""
