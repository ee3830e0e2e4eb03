"""Jobs as the core models them: states, the legal moves between them, and their JSON."""
import dataclasses
import datetime
import enum
import re
import uuid

PENDING, RUNNING, SUCCESS, FAILURE, PAUSED, RETRY = "Pending", "Running", "Success", "Failure", "Paused", "Retry"
STATES = (PENDING, RUNNING, SUCCESS, FAILURE, PAUSED, RETRY)
FINISHED = frozenset({SUCCESS, FAILURE})
# Every state but the two ends: a job in one of them holds its request (AdvancedRest.MaxPendingJobs and
# MaxPendingBytes bound them together, on one server and in the cluster).
UNFINISHED = frozenset(STATES) - FINISHED

CANCELED_JOB = 37  # Orthanc's ErrorCode_CanceledJob
CANCELED_DESCRIPTION = "This job was canceled"

LATER, NOTHING, UNDO = "later", "nothing", "undo"

# A client's actions (the last part of POST /jobs/{id}/{action}).
CANCEL, PAUSE, RESUME, RESUBMIT = "cancel", "pause", "resume", "resubmit"
ACTIONS = (CANCEL, PAUSE, RESUME, RESUBMIT)

# The one table of legal moves: (event, state) -> outcome. Absent: refused (HTTP 400
# for a client's action; a bug for a worker's event).
#   a state: the job moves there at once;
#   LATER: a running job moves at its next step (a flag is set);
#   NOTHING: accepted, no change;
#   UNDO: what the job stored is removed first, then it moves to Failure.
# Client actions follow the core's registry; worker events are the engine's own moves.
TRANSITIONS = {
    (PAUSE, PENDING): PAUSED,
    (PAUSE, RETRY): PAUSED,
    (PAUSE, RUNNING): LATER,
    (PAUSE, PAUSED): NOTHING,
    (PAUSE, SUCCESS): NOTHING,
    (PAUSE, FAILURE): NOTHING,
    (CANCEL, PENDING): UNDO,
    (CANCEL, RETRY): UNDO,
    (CANCEL, PAUSED): UNDO,
    (CANCEL, RUNNING): LATER,
    (CANCEL, SUCCESS): NOTHING,
    (CANCEL, FAILURE): NOTHING,
    (RESUME, PAUSED): PENDING,
    (RESUBMIT, FAILURE): PENDING,
    # worker events
    ("start", PENDING): RUNNING,
    ("succeed", RUNNING): SUCCESS,
    ("fail", RUNNING): UNDO,  # a step raised
    ("cancelled", RUNNING): UNDO,  # a cancel asked while it ran took effect
    ("suspend", RUNNING): PAUSED,  # a pause asked while it ran took effect
    ("stop", RUNNING): PENDING,  # the engine stops: taken up again at the next start
    # the end of an undo (its work removed): from wherever the job showed while it was undone
    ("undone", RUNNING): FAILURE,
    ("undone", PENDING): FAILURE,
    ("undone", PAUSED): FAILURE,
    ("undone", RETRY): FAILURE,
    # the cluster's own moves: a job whose owner's lease expired, or whose owner let it go
    ("release", RUNNING): PENDING,
    ("release", RETRY): PENDING,
    ("release", PENDING): NOTHING,  # claimed, not started yet
    ("release", PAUSED): NOTHING,  # claimed to be undone
    ("release-paused", RUNNING): PAUSED,  # a pause was asked of it: it shows Paused, as its owner would have
}

# The plugin's job ids: UUIDs of version 8 (RFC 9562, "custom"), where the core's are version 4. The
# core routes /jobs/{id}... serve this form only (the route table's pattern), so that a core job's id
# reaches the core's own handlers through Orthanc's HTTP server. Ids of plugin jobs saved by older
# versions (version 4) stay reachable under {Root}.
PLUGIN_JOB_ID = "[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
_PLUGIN_JOB_ID = re.compile(PLUGIN_JOB_ID + r"\Z")
_VERSION = 0xF << 76  # the version nibble of a UUID's 128-bit integer


def new_job_id():
    """A new plugin job id: a random UUID whose version nibble is 8."""
    return str(uuid.UUID(int=(uuid.uuid4().int & ~_VERSION) | (0x8 << 76)))


def is_plugin_job_id(job_id):
    """Whether `job_id` has the form of the ids this version gives its jobs (see PLUGIN_JOB_ID)."""
    return bool(_PLUGIN_JOB_ID.match(job_id))


def outcome(event, state):
    """What `event` does to a job in `state` (see TRANSITIONS); None when refused."""
    return TRANSITIONS.get((event, state))


class Effect(enum.Enum):
    """What a client's action does to a job (see `decide_action`)."""

    NOTHING = "nothing"  # accepted, nothing changes
    ASK_PAUSE = "ask-pause"  # a running job pauses at its next step
    ASK_CANCEL = "ask-cancel"  # a running job removes its work at its next step, then fails with ErrorCode 37
    RECANCEL = "recancel"  # a job failing on its own, its work being removed: it ends with ErrorCode 37
    UNDO = "undo"  # a waiting job that may have stored work: removed, then Failure with ErrorCode 37
    FAIL = "fail"  # a waiting job that stored nothing: Failure with ErrorCode 37 at once
    MOVE = "move"  # the job moves to `Decision.state` at once (resubmit: from scratch)
    REFUSED = "refused"  # the state forbids it, or the action is unknown: the core's 400 (`Decision.reason`)


@dataclasses.dataclass(frozen=True)
class Decision:
    """An action's effect; for Effect.MOVE the state the job moves to, for Effect.REFUSED why."""

    effect: Effect
    state: str = None
    reason: str = None


def decide_action(action, state, undo_code=None, pause_requested=False, ran=True):
    """What `action` does to a job in `state`: the one decision of one server's engine and of the cluster.

    `undo_code`: the ErrorCode the job ends with once the removal of its work, under way or asked (a cancel
    accepted), is done; None when none is. `ran`: it may have stored work since it was (re)submitted.
    A job being undone ends in Failure whatever is asked: a cancel makes that end a cancel's (37), a pause
    changes nothing, resume and resubmit are refused at once (400). Refusals are returned, not raised: this
    module imports nothing of the package (the cluster's history checker loads it alone).
    """
    if action not in ACTIONS:
        return Decision(Effect.REFUSED, reason="Unknown action %s" % action)
    if undo_code is not None and state not in FINISHED:
        if action == CANCEL:
            return Decision(Effect.NOTHING if undo_code == CANCELED_JOB else Effect.RECANCEL)
        if action == PAUSE:
            return Decision(Effect.NOTHING)
        return Decision(Effect.REFUSED, reason="Cannot %s a job that is being cancelled or failing: it ends in "
                                               "Failure" % action)
    found = outcome(action, state)
    if found is None:
        return Decision(Effect.REFUSED, reason="Cannot %s a job in state %s" % (action, state))
    if found == NOTHING:
        return Decision(Effect.NOTHING)
    if found == LATER:
        if action == PAUSE:
            return Decision(Effect.NOTHING if pause_requested else Effect.ASK_PAUSE)
        return Decision(Effect.ASK_CANCEL)
    if found == UNDO:
        return Decision(Effect.UNDO if ran else Effect.FAIL)
    return Decision(Effect.MOVE, found)


def timestamp(moment):
    """Orthanc's job time format, e.g. 20240506T070809.123456 (UTC)."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%f")


@dataclasses.dataclass
class Job:
    """One plugin job; the engine alone changes it, under its lock."""

    id: str
    type: str
    priority: int
    runner: object  # see engine.Runner
    sequence: int  # submission order, breaks priority ties
    state: str = PENDING
    progress: float = 0.0
    created: datetime.datetime = None
    completed: datetime.datetime = None
    changed: datetime.datetime = None
    runtime: float = 0.0
    error_code: int = 0
    error_description: str = "Success"
    error_details: str = ""
    content: dict = dataclasses.field(default_factory=dict)
    outputs: dict = dataclasses.field(default_factory=dict)  # name -> (bytes, MIME type)
    pause_requested: bool = False
    cancel_requested: bool = False
    undoing: bool = False  # its work is being removed: workers keep off
    undo_error: tuple = None  # while undoing: (ErrorCode, ErrorDescription, ErrorDetails) it then fails with
    cancel_after_replay: bool = False  # restored with a cancel accepted: run to find its work, then undo
    ran_before: bool = False  # an earlier run (before a crash or a takeover) may have stored work past this one's
    step: int = 0  # next step to run
    claim: object = None  # cluster: the claim (its token) under which this replica runs it; its fence checks it
    size: int = 0  # bytes of the request it holds while unfinished (runner.size(); AdvancedRest.MaxPendingBytes)
    load: object = None  # one server: () -> its payload as the store saved it (see Engine.saved), or None

    def to_json(self):
        """The job as GET /jobs/{id} answers it (the core's field names)."""
        document = {
            "ID": self.id,
            "Type": self.type,
            "Priority": self.priority,
            "State": self.state,
            "Progress": int(round(self.progress)),
            "CreationTime": timestamp(self.created),
            "Timestamp": timestamp(self.changed),
            "EffectiveRuntime": round(self.runtime, 6),
            "ErrorCode": self.error_code,
            "ErrorDescription": self.error_description,
            "ErrorDetails": self.error_details,
            "Content": dict(self.content),
        }
        if self.state in FINISHED and self.completed is not None:
            document["CompletionTime"] = timestamp(self.completed)
        return document
