"""The workers of the plugin's jobs: a pool that keeps no state of its own.

Each worker asks its store (interfaces.JobStore: one server's local.LocalStore, or the cluster's
cluster.replica.Cluster) for a claim, runs the claimed job's runner step by step, and reports every move to
the store, which decides it from jobs/decisions.py and answers a Verdict: the row's pause and cancel
requests, or None when the claim is lost (a cluster's takeover), at which the worker stops and undoes
nothing. What a job is (its state, progress, errors, whether it is asked to pause) lives in the store only.
"""
import logging
import threading
import time

from ..errors import AdvancedRestError
from .model import Move, Report

logger = logging.getLogger(__name__)


class Runner:
    """The work of one job, in steps; a worker calls these from its thread.

    `steps()` may be called again after a resubmission: a run starts at step 0, or where a pause left it.
    """

    def steps(self):
        """How many steps the job has."""
        raise NotImplementedError

    def step(self, index):
        """Do step `index` (0-based). Raise to fail the job."""
        raise NotImplementedError

    def content(self):
        """The job's Content while it runs and when it fails."""
        return {}

    def result(self):
        """The job's Content once every step succeeded. (No job type has outputs yet, README, Jobs: they come
        back, stored where every replica can serve them, with the first job type that produces one.)"""
        return self.content()

    def rollback(self):
        """Undo what the steps did (called when the job fails or is cancelled)."""

    def payload(self):
        """What re-creating this runner after a restart needs (JSON), or None if it cannot be."""
        return None

    def size(self):
        """Bytes of the request this runner holds (what AdvancedRest.MaxPendingBytes counts)."""
        return 0

    def park(self, load):
        """The job waits or has ended: drop what `load()` (its payload as saved) gives back, and take it
        back from there at the next step; `load` None: the job succeeded and never runs again. Its store
        calls this only while no worker holds the job."""


class Restored(Runner):
    """A job restored without what running it needs: it shows, but cannot run again."""

    def __init__(self, content):
        self._content = content

    def steps(self):
        raise AdvancedRestError("This job was restored after a restart without its request: it cannot run again")

    def content(self):
        return dict(self._content or {})


def _content(runner):
    """The runner's Content, or None (unchanged) when reading it raised: a move happens whatever it does."""
    try:
        return runner.content()
    except Exception:
        logger.exception("A job's content could not be read")
        return None


class WorkerPool:
    """`concurrent_jobs` threads, each claiming a job from `store` and running it to its next stop."""

    def __init__(self, store, concurrent_jobs=2):
        self._store = store
        self._concurrent_jobs = max(1, concurrent_jobs)
        self._stopping = threading.Event()
        self._threads = []
        self._threads_lock = threading.Lock()

    def start(self):
        """Start the workers."""
        with self._threads_lock:
            self._stopping.clear()
            if self._threads:
                return
            for index in range(self._concurrent_jobs):
                thread = threading.Thread(target=self._work, name="advanced-rest-job-%d" % index, daemon=True)
                self._threads.append(thread)
                thread.start()

    def stop(self, timeout=30.0):
        """Stop the workers after their current step: their jobs go back to their store (Move.STOP)."""
        self._stopping.set()
        self._store.wake()
        with self._threads_lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout)

    def _work(self):
        while not self._stopping.is_set():
            claim = None
            try:
                claim = self._store.claim(self._stopping)
                if claim is not None:
                    self._run(claim)
            except Exception:  # a worker never dies: the job fails, the worker goes on
                logger.exception("A worker of the plugin's jobs caught an unexpected error; it goes on")
                if claim is not None:
                    self._rescue(claim)
                else:
                    self._stopping.wait(1.0)

    def _rescue(self, claim):
        try:
            self._undo(claim, Move.FAIL, {"ErrorCode": -1, "ErrorDescription": "Internal error",
                                          "ErrorDetails": "unexpected error in the jobs engine, see Orthanc's log"})
        except Exception:
            logger.exception("Could not fail job %s", claim.job_id)

    def _run(self, claim):
        """Run `claim` to its next stop: its end, a pause, a cancel, the pool's stop, or the claim's loss."""
        runner = claim.runner
        if claim.undoing and not claim.replay:  # its runner knows all its work: remove it now
            self._undo(claim, Move.BEGIN_UNDO)
            return
        verdict = self._store.move(claim, Move.START, Report(progress=0.0 if claim.step == 0 else None,
                                                             content=_content(runner)))
        if verdict is None or verdict.orphaned:
            self._lost(claim, verdict)
            return
        try:
            total = max(1, runner.steps())
            ended = self._steps(claim, runner, total)
            if ended is None:
                return  # the claim was lost
            done, replaying, verdict, runtime, step = ended
            if replaying:  # it ran to find its work: now remove it (or, stopped first, the next claim does)
                final = Move.CANCELLED if done else Move.STOP
            elif verdict.cancel:
                final = Move.CANCELLED
            elif done:
                final = Move.SUCCEED
            else:
                final = Move.SUSPEND if verdict.pause else Move.STOP
            report = Report(progress=100.0, runtime=runtime, content=runner.result()) if final == Move.SUCCEED \
                else Report(progress=100.0 * step / total, runtime=runtime, content=runner.content(), step=step)
        except AdvancedRestError as error:
            self._undo(claim, Move.FAIL, {"ErrorCode": error.code, "ErrorDescription": error.message,
                                          "ErrorDetails": error.details or ""})
            return
        except Exception as error:  # a job that raises fails; the worker lives on
            logger.exception("Job %s (%s) failed", claim.job_id, claim.job_type)
            self._undo(claim, Move.FAIL, {"ErrorCode": -1, "ErrorDescription": "Internal error",
                                          "ErrorDetails": type(error).__name__})
            return
        if final == Move.CANCELLED:
            self._undo(claim, Move.CANCELLED)
            return
        verdict = self._store.move(claim, final, report)
        if verdict is None or verdict.orphaned:
            self._lost(claim, verdict)
        elif not verdict.applied:  # a cancel arrived after its last step: its work is removed instead
            self._undo(claim, Move.BEGIN_UNDO)

    def _steps(self, claim, runner, total):
        """Steps until done, or a pause, cancel or stop is asked: (done, replaying, the last Verdict, runtime
        not reported yet, steps done); None when the claim was lost (checked with the store before each step).

        A replay (claimed to undo, or cancelled after an earlier run) runs to its end whatever is asked: only
        then does it know everything it must remove."""
        replaying = claim.undoing
        step, runtime = claim.step, 0.0
        while True:
            verdict = self._store.move(claim, Move.STEP, Report(
                progress=100.0 * min(step, total) / total, runtime=runtime, content=runner.content(), step=step))
            runtime = 0.0
            if verdict is None or verdict.orphaned:
                self._lost(claim, verdict)
                return None
            if verdict.cancel and claim.replay and not replaying:
                # An earlier run may have stored what this one has not reached yet: run to the end (its steps
                # find their work already stored), so that the undo removes all of it.
                replaying = True
            if not replaying and (verdict.cancel or verdict.pause) or self._stopping.is_set():
                return False, replaying, verdict, runtime, step
            if step >= total:
                return True, replaying, verdict, runtime, step
            began = time.monotonic()
            if step < runner.steps():  # a job of no step still runs once, to produce its result
                runner.step(step)
            step += 1
            runtime = time.monotonic() - began

    def _undo(self, claim, move, error=None):
        """Record that the job's work is removed (`move`: BEGIN_UNDO, CANCELLED or FAIL with its `error`; a new
        owner removes it too), remove it, then report UNDONE: the job shows Failure, with the error its row
        holds (a cancel accepted meanwhile made that a cancel's)."""
        verdict = self._store.move(claim, move, Report(error=error))
        if verdict is None or verdict.orphaned:
            self._lost(claim, verdict)
            return
        try:
            claim.runner.rollback()
        except Exception:
            logger.exception("Could not undo the work of job %s", claim.job_id)
        verdict = self._store.move(claim, Move.UNDONE, Report(content=_content(claim.runner)))
        if verdict is None or verdict.orphaned:
            self._lost(claim, verdict)

    @staticmethod
    def _lost(claim, verdict):
        """The claim was taken over (a cluster): stop here; `verdict` orphaned: the job has failed since, and
        what this worker stored after it lost the claim goes too."""
        logger.warning("Job %s: this replica lost its claim on it (taken over); it stops here and %s", claim.job_id,
                       "removes what it stored since, the job having failed" if verdict else "undoes nothing")
        if verdict is not None:
            try:
                claim.runner.rollback()
            except Exception:
                logger.exception("Could not remove what job %s stored after losing its claim", claim.job_id)
