"""The core's failed jobs retried (retries/core_jobs.py) with a fake core and fake global properties: what is shown,
when each job runs again, what is saved before anything is done, the actions, the bounds."""
import json
import threading

import pytest

from advanced_rest.errors import IllegalTransition
from advanced_rest.retries import core_jobs
from advanced_rest.settings import RetryPolicy

POLICY = RetryPolicy(types=("DicomModalityStore",), max_attempts=3, backoff_seconds=10.0, max_backoff_seconds=60.0)


class Core:
    """The core's jobs, as its GET /jobs/{id} shows them; resubmit accepts a failed job only."""

    def __init__(self):
        self.jobs, self.resubmitted = {}, []

    def fail(self, job_id, at, code=9, job_type="DicomModalityStore"):
        self.jobs[job_id] = {"ID": job_id, "Type": job_type, "State": "Failure", "ErrorCode": code,
                             "ErrorDescription": "Error in the network protocol", "ErrorDetails": "refused",
                             "CompletionTime": at, "Progress": 0}
        return self.jobs[job_id]

    def resubmit(self, job_id):
        job = self.jobs.get(job_id)
        if job is None or job["State"] != "Failure":
            raise RuntimeError("refused")
        job.update(State="Pending")
        job.pop("CompletionTime", None)
        self.resubmitted.append(job_id)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def made():
    core, clock, properties, counted = Core(), Clock(), {}, []
    retries = core_jobs.CoreRetries((POLICY,), properties.get, properties.__setitem__, core.resubmit,
                                    lambda: list(core.jobs), max_waiting=2,
                                    count=lambda job_type, outcome: counted.append(outcome), clock=clock,
                                    random=lambda: 1.0)
    return retries, core, clock, properties, counted


def _saved(properties):
    return {entry["ID"]: entry for entry in json.loads(properties[core_jobs.RETRIES_PROPERTY])["Entries"]}


def _run_due(retries):
    """What the resubmitting thread does when it wakes now: every job due is run again."""
    with retries._lock:
        due, _ = retries._due_now()
    for job_id in due:
        retries._run_again(job_id)


def _due(retries):
    with retries._lock:
        return retries._due_now()[0]


def test_a_failed_job_under_a_policy_shows_retry_saved_before_it_is_shown(made):
    retries, core, clock, properties, counted = made
    shown = retries.shape(core.fail("a", "20261208T010000.000000"))
    assert (shown["State"], shown["Attempt"], shown["ErrorCode"]) == ("Retry", 1, 9)
    assert shown["NextAttempt"] == "19700101T001650.000000"  # 1000 s + 10 s
    assert "CompletionTime" not in shown
    assert _saved(properties)["a"]["Status"] == "Waiting" and counted == ["scheduled"]


@pytest.mark.parametrize("job_type, code", [("OrthancPeerStore", 9), ("DicomModalityStore", 8)],
                         ids=["no policy for the type", "a bad request is never retried"])
def test_what_no_policy_retries_shows_as_the_core_does(made, job_type, code):
    retries, core, _, properties, _ = made
    job = core.fail("a", "t1", code=code, job_type=job_type)
    assert retries.shape(job) == job and core_jobs.RETRIES_PROPERTY not in properties


def test_it_runs_again_at_its_time_once_and_ends_succeeded(made):
    retries, core, clock, _, counted = made
    retries.shape(core.fail("a", "t1"))
    clock.now += 9.9
    assert _due(retries) == []
    clock.now += 0.2
    _run_due(retries)
    assert core.resubmitted == ["a"]
    assert retries.shape(core.jobs["a"])["Attempt"] == 2
    core.jobs["a"].update(State="Success")
    assert retries.shape(core.jobs["a"])["State"] == "Success"
    assert retries._entries["a"]["Status"] == "Succeeded" and counted == ["scheduled", "resubmitted", "succeeded"]


def test_it_gives_up_after_max_attempts_with_its_last_error(made):
    retries, core, clock, _, counted = made
    retries.shape(core.fail("a", "t1"))
    for attempt, failed_at in ((2, "t2"), (3, "t3")):
        clock.now += 100
        _run_due(retries)
        core.fail("a", failed_at)
        shown = retries.shape(core.jobs["a"])
    assert (shown["State"], shown["Attempt"]) == ("Failure", 3) and core.resubmitted == ["a", "a"]
    assert counted[-1] == "gave_up"
    clock.now += 1000
    assert _due(retries) == []


def test_the_backoff_doubles_up_to_its_longest(made):
    retries, core, clock, _, _ = made
    retries.shape(core.fail("a", "t1"))
    waits = []
    for failed_at in ("t2",):
        waits.append(retries._entries["a"]["NextAttempt"] - clock.now)
        clock.now = retries._entries["a"]["NextAttempt"]
        _run_due(retries)
        core.fail("a", failed_at)
        retries.shape(core.jobs["a"])
        waits.append(retries._entries["a"]["NextAttempt"] - clock.now)
    assert waits == [10.0, 20.0]


def test_cancel_ends_it_for_good_with_error_37_and_it_never_runs_again(made):
    retries, core, clock, properties, _ = made
    retries.shape(core.fail("a", "t1"))
    assert retries.act("a", "cancel") is True
    assert _saved(properties)["a"]["Status"] == "Cancelled"  # saved before the answer
    shown = retries.shape(core.jobs["a"])
    assert (shown["State"], shown["ErrorCode"]) == ("Failure", 37)
    clock.now += 1000
    assert _due(retries) == []
    assert core.resubmitted == [] and retries.act("a", "cancel") is False  # the core's own answer from now on


def test_pause_holds_it_resume_puts_it_back_on_schedule_resubmit_runs_it_now(made):
    retries, core, clock, _, _ = made
    retries.shape(core.fail("a", "t1"))
    retries.act("a", "pause")
    assert retries.shape(core.jobs["a"])["State"] == "Paused"
    clock.now += 100
    assert _due(retries) == []
    retries.shape(core.fail("b", "t1"))
    with pytest.raises(IllegalTransition):
        retries.act("b", "resume")  # waiting, not paused: the core's 400
    retries.act("a", "resume")
    assert retries.shape(core.jobs["a"])["State"] == "Retry"
    _run_due(retries)  # its time had come while it was paused: at once
    assert core.resubmitted == ["a"]
    core.jobs["a"]["State"] = "Success"
    retries.shape(core.jobs["a"])  # ended: its place under MaxRetryingJobs (2) is free again
    core.fail("c", "t1")
    retries.shape(core.jobs["c"])
    retries.act("c", "resubmit")
    _run_due(retries)
    assert core.resubmitted == ["a", "c"]


def test_a_job_gone_from_the_core_before_its_time_is_given_up(made):
    retries, core, clock, _, counted = made
    retries.shape(core.fail("a", "t1"))
    del core.jobs["a"]
    clock.now += 100
    _run_due(retries)
    assert retries._entries["a"]["Status"] == "Lost" and counted[-1] == "lost"


def test_beyond_max_retrying_jobs_a_failure_is_not_retried(made):
    retries, core, _, _, counted = made
    for job_id in ("a", "b", "c"):
        retries.shape(core.fail(job_id, "t1"))
    assert retries.shape(core.jobs["c"])["State"] == "Failure" and counted[-1] == "refused"
    assert retries.gauges()[0] == {"DicomModalityStore": 2}


def test_a_restart_keeps_the_waiting_jobs_and_their_times(made):
    retries, core, clock, properties, _ = made
    retries.shape(core.fail("a", "t1"))
    again = core_jobs.CoreRetries((POLICY,), properties.get, properties.__setitem__, core.resubmit,
                                  lambda: list(core.jobs), clock=clock, random=lambda: 1.0)
    again.load()
    assert again.shape(core.jobs["a"])["State"] == "Retry"
    clock.now += 100
    _run_due(again)
    assert core.resubmitted == ["a"]


def test_a_crash_between_a_resubmission_and_its_save_never_runs_the_job_twice(made):
    retries, core, clock, properties, _ = made
    retries.shape(core.fail("a", "t1"))
    saved = dict(properties)
    clock.now += 100
    _run_due(retries)  # resubmitted; the table saved after it is lost with the crash:
    again = core_jobs.CoreRetries((POLICY,), saved.get, saved.__setitem__, core.resubmit, lambda: list(core.jobs),
                                  clock=clock, random=lambda: 1.0)
    again.load()
    assert again.shape(core.jobs["a"])["Attempt"] == 2  # seen running again: its attempt counted
    _run_due(again)
    assert core.resubmitted == ["a"]


def test_two_reads_at_once_schedule_one_retry(made):
    retries, core, _, _, counted = made
    job = core.fail("a", "t1")
    barrier = threading.Barrier(2)

    def read():
        barrier.wait(5)
        retries.shape(job)
    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert counted == ["scheduled"]


def test_an_action_while_the_core_is_asked_to_run_the_job_is_decided_after_it(made):
    retries, core, clock, _, _ = made
    retries.shape(core.fail("a", "t1"))
    clock.now += 100
    inside, go = threading.Event(), threading.Event()
    resubmit = core.resubmit

    def slow(job_id):
        inside.set()
        assert go.wait(5)
        resubmit(job_id)
    retries._resubmit = slow
    runner = threading.Thread(target=lambda: retries._run_again("a"))
    runner.start()
    assert inside.wait(5)
    answered = []
    canceller = threading.Thread(target=lambda: answered.append(retries.act("a", "cancel")))
    canceller.start()
    go.set()
    runner.join(5)
    canceller.join(5)
    # Never a cancel answered as the table's while the job runs again: decided after the resubmission, the table
    # no longer holds the job and the cancel is the core's (the route sends it there).
    assert (answered, retries._entries["a"]["Status"]) == ([False], "Resubmitted")


def test_a_job_the_core_no_longer_knows_leaves_the_table_and_its_place_under_the_bound(made):
    retries, core, clock, properties, _ = made
    for job_id in ("a", "b"):
        retries.shape(core.fail(job_id, "t1"))
    clock.now += 100
    _run_due(retries)  # both run again: still under the bound (MaxRetryingJobs 2) while they run
    assert retries.shape(core.fail("c", "t1"))["State"] == "Failure"
    del core.jobs["a"], core.jobs["b"]  # deleted while running again (or out of the core's history)
    retries._prune()
    assert set(_saved(properties)) == {"c"}
    assert retries.shape(core.fail("d", "t1"))["State"] == "Retry"
