"""Whether the Python plugin keeps the GIL while Orthanc answers its calls, told from a probe's clocks (issue 26).

Python plugin 4.0 to 4.2 (and 4.3 and later without `"Python": {"AllowThreads": true}`) hold the GIL
during every call into Orthanc, so that `RestApiPost('/instances')` stops every other Python thread while
Orthanc stores. host.py's probe proves which one runs here, never by the version number: a waiting thread
asks for the GIL while the probing thread holds it in C (no Python runs between the start of the hold and
the end of the call into Orthanc), so the waiting thread can only note the clock *during* that call if the
call let the GIL go; otherwise it notes it after the call. Pure: host.py runs the probe.
"""
import collections

RELEASED, KEPT = "released", "kept"
TRIALS = 3  # a released GIL may go unnoticed on a loaded machine (the waiter not scheduled in time): try again

# One trial: the probing thread's clock just before and just after its call into Orthanc, and the waiting
# thread's clock when it got the GIL (None: it never noted it).
Trial = collections.namedtuple("Trial", "before waiter after")


def decide(trials):
    """RELEASED if one trial saw the waiter run during the call; KEPT if every trial saw it after; else None.

    A waiter running during the call proves the GIL was released (nothing else lets it run then); one
    running after proves nothing alone, since it may merely have been late: KEPT needs every trial so.
    """
    if any(t.waiter is not None and t.before < t.waiter < t.after for t in trials):
        return RELEASED
    if trials and all(t.waiter is not None and t.waiter > t.after for t in trials):
        return KEPT
    return None
