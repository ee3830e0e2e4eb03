"""The job change feed: numbering, change detection, waiting."""
import threading
import time

from advanced_rest.jobs.changes import ChangeFeed


def _job(job_id, state, progress=0):
    return {"ID": job_id, "Type": "T", "State": state, "Progress": progress, "Timestamp": "x"}


def test_only_moves_are_recorded_and_numbered():
    feed = ChangeFeed()
    feed.record(_job("a", "Pending"), "plugin")
    feed.record(_job("a", "Pending"), "plugin")
    feed.record(_job("a", "Running", 50), "plugin")
    feed.record(_job("b", "Success", 100), "core")
    answer = feed.since(0, 0)
    assert [(c["Seq"], c["ID"], c["State"], c["Origin"]) for c in answer["Changes"]] == [
        (1, "a", "Pending", "plugin"), (2, "a", "Running", "plugin"), (3, "b", "Success", "core")]
    assert (answer["Last"], answer["Done"]) == (3, True)
    assert feed.since(2, 0)["Changes"][0]["Seq"] == 3


def test_since_waits_for_the_next_change():
    feed = ChangeFeed()
    threading.Timer(0.1, feed.record, (_job("a", "Pending"), "plugin")).start()
    began = time.monotonic()
    answer = feed.since(0, 5)
    assert answer["Changes"] and time.monotonic() - began < 2


def test_a_client_ahead_of_the_feed_is_told_to_start_over():
    feed = ChangeFeed()
    feed.record(_job("a", "Pending"), "plugin")
    assert feed.since(50, 0) == {"Changes": [], "Last": 1, "Done": True}


def test_limit_and_done():
    feed = ChangeFeed()
    for index in range(5):
        feed.record(_job("a", "Running", index), "plugin")
    answer = feed.since(0, 0, limit=2)
    assert (len(answer["Changes"]), answer["Last"], answer["Done"]) == (2, 2, False)

