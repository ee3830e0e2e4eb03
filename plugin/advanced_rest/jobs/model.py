"""Jobs as the core models them: states, the legal moves between them, and their JSON."""
import dataclasses
import datetime
import enum
import re
import uuid


class State(enum.StrEnum):
    """A job's state, as the core names it (the "State" of its JSON)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILURE = "Failure"
    PAUSED = "Paused"
    RETRY = "Retry"


STATES = tuple(State)
FINISHED = frozenset({State.SUCCESS, State.FAILURE})
# Every state but the two ends: a job in one of them holds its request (AdvancedRest.MaxPendingJobs and
# MaxPendingBytes bound them together, on one server and in the cluster).
UNFINISHED = frozenset(State) - FINISHED
# The "State" of a job's last change, once it was deleted (the change feed, the webhooks' JobDeleted): a
# pseudo-state no job shows.
DELETED = "Deleted"

CANCELED_JOB = 37  # Orthanc's ErrorCode_CanceledJob
CANCELED_DESCRIPTION = "This job was canceled"


class Action(enum.StrEnum):
    """A client's action: the last part of POST /jobs/{id}/{action}."""

    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    RESUBMIT = "resubmit"


ACTIONS = tuple(Action)


class Move(enum.StrEnum):
    """A move that no client asks for: what a worker reports of the job it runs (each written through the
    cluster's fence), and the cluster's releases."""

    START = "start"  # it takes a Pending job
    STEP = "step"  # before each step (the cluster's fence: it still holds its claim)
    SUCCEED = "succeed"  # every step done
    FAIL = "fail"  # a step raised: its work is removed, then it fails
    CANCELLED = "cancelled"  # a cancel asked while it ran took effect: its work is removed
    SUSPEND = "suspend"  # a pause asked while it ran took effect
    STOP = "stop"  # the engine stops: taken up again at the next start
    BEGIN_UNDO = "undo"  # the removal of its work begins (recorded: a new owner removes it too)
    UNDONE = "undone"  # its work removed: it fails
    RELEASE = "release"  # the cluster: its owner's lease expired, or its owner let it go
    RELEASE_PAUSED = "release-paused"  # the same, a pause having been asked of it


class Outcome(enum.Enum):
    """What an entry of TRANSITIONS does when it is no move to a state at once."""

    LATER = "later"  # a running job moves at its next step (a flag is set)
    NOTHING = "nothing"  # accepted, no change
    UNDO = "undo"  # what the job stored is removed first, then it moves to Failure


# The one table of legal moves: (action or move, state) -> a State (the job moves there at once) or an
# Outcome. Absent: refused (HTTP 400 for a client's action; a bug for a worker's move). Client actions follow
# the core's registry; the moves are the engine's and the cluster's own.
TRANSITIONS = {
    (Action.PAUSE, State.PENDING): State.PAUSED,
    (Action.PAUSE, State.RETRY): State.PAUSED,
    (Action.PAUSE, State.RUNNING): Outcome.LATER,
    (Action.PAUSE, State.PAUSED): Outcome.NOTHING,
    (Action.PAUSE, State.SUCCESS): Outcome.NOTHING,
    (Action.PAUSE, State.FAILURE): Outcome.NOTHING,
    (Action.CANCEL, State.PENDING): Outcome.UNDO,
    (Action.CANCEL, State.RETRY): Outcome.UNDO,
    (Action.CANCEL, State.PAUSED): Outcome.UNDO,
    (Action.CANCEL, State.RUNNING): Outcome.LATER,
    (Action.CANCEL, State.SUCCESS): Outcome.NOTHING,
    (Action.CANCEL, State.FAILURE): Outcome.NOTHING,
    (Action.RESUME, State.PAUSED): State.PENDING,
    (Action.RESUBMIT, State.FAILURE): State.PENDING,
    # a worker's moves
    (Move.START, State.PENDING): State.RUNNING,
    (Move.SUCCEED, State.RUNNING): State.SUCCESS,
    (Move.FAIL, State.RUNNING): Outcome.UNDO,
    (Move.CANCELLED, State.RUNNING): Outcome.UNDO,
    (Move.SUSPEND, State.RUNNING): State.PAUSED,
    (Move.STOP, State.RUNNING): State.PENDING,
    # the end of an undo (its work removed): from wherever the job showed while it was undone
    (Move.UNDONE, State.RUNNING): State.FAILURE,
    (Move.UNDONE, State.PENDING): State.FAILURE,
    (Move.UNDONE, State.PAUSED): State.FAILURE,
    (Move.UNDONE, State.RETRY): State.FAILURE,
    # the cluster's own moves: a job whose owner's lease expired, or whose owner let it go
    (Move.RELEASE, State.RUNNING): State.PENDING,
    (Move.RELEASE, State.RETRY): State.PENDING,
    (Move.RELEASE, State.PENDING): Outcome.NOTHING,  # claimed, not started yet
    (Move.RELEASE, State.PAUSED): Outcome.NOTHING,  # claimed to be undone
    # a pause was asked of it: it shows Paused, as its owner would have
    (Move.RELEASE_PAUSED, State.RUNNING): State.PAUSED,
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
    """What `event` (an Action or a Move) does to a job in `state` (see TRANSITIONS): a State, an Outcome, or
    None when refused."""
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
    state: State = None
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
        if action == Action.CANCEL:
            return Decision(Effect.NOTHING if undo_code == CANCELED_JOB else Effect.RECANCEL)
        if action == Action.PAUSE:
            return Decision(Effect.NOTHING)
        return Decision(Effect.REFUSED, reason="Cannot %s a job that is being cancelled or failing: it ends in "
                                               "Failure" % action)
    found = outcome(action, state)
    if found is None:
        return Decision(Effect.REFUSED, reason="Cannot %s a job in state %s" % (action, state))
    if found is Outcome.NOTHING:
        return Decision(Effect.NOTHING)
    if found is Outcome.LATER:
        if action == Action.PAUSE:
            return Decision(Effect.NOTHING if pause_requested else Effect.ASK_PAUSE)
        return Decision(Effect.ASK_CANCEL)
    if found is Outcome.UNDO:
        return Decision(Effect.UNDO if ran else Effect.FAIL)
    return Decision(Effect.MOVE, found)


def timestamp(moment):
    """Orthanc's job time format, e.g. 20240506T070809.123456 (UTC)."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%f")


def new_document(job_id, job_type, priority, content, now):
    """The JSON of a job just submitted (GET /jobs/{id}, the core's field names); `now` as `timestamp` writes it."""
    return {"ID": job_id, "Type": job_type, "Priority": int(priority), "State": State.PENDING, "Progress": 0,
            "CreationTime": now, "Timestamp": now, "EffectiveRuntime": 0.0, "ErrorCode": 0,
            "ErrorDescription": "Success", "ErrorDetails": "", "Content": dict(content or {})}


def _iso(stamp):
    """Orthanc's job time (20240506T070809.123456) as ISO 8601, or None."""
    if not stamp:
        return None
    moment = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=datetime.timezone.utc)
    return moment.isoformat()


def record_of(document):
    """The saved record of a job's JSON: what one server's global properties hold per job (jobs/store.py, its
    format read by every earlier version) and the cluster's `record` column."""
    return {
        "ID": document["ID"], "Type": document["Type"], "Priority": document["Priority"],
        "State": document["State"], "Progress": document.get("Progress", 0),
        "CreationTime": _iso(document.get("CreationTime")), "CompletionTime": _iso(document.get("CompletionTime")),
        "Runtime": document.get("EffectiveRuntime", 0.0), "ErrorCode": document.get("ErrorCode", 0),
        "ErrorDescription": document.get("ErrorDescription", "Success"),
        "ErrorDetails": document.get("ErrorDetails", ""), "Content": document.get("Content", {}),
    }


def document_of(record, now):
    """A job's JSON from its saved record (see `record_of`); `now`: its Timestamp."""
    def stamp(text):
        return timestamp(datetime.datetime.fromisoformat(text)) if text else None
    document = {
        "ID": record["ID"], "Type": record["Type"], "Priority": record["Priority"], "State": record["State"],
        "Progress": int(round(record.get("Progress", 0))), "CreationTime": stamp(record.get("CreationTime")),
        "Timestamp": now, "EffectiveRuntime": record.get("Runtime", 0.0),
        "ErrorCode": record.get("ErrorCode", 0), "ErrorDescription": record.get("ErrorDescription", "Success"),
        "ErrorDetails": record.get("ErrorDetails", ""), "Content": record.get("Content", {}),
    }
    if record.get("CompletionTime"):
        document["CompletionTime"] = stamp(record["CompletionTime"])
    return document


@dataclasses.dataclass
class Job:
    """One job as one server's store keeps it (local.LocalStore, under its lock): its JSON and the fields of
    the cluster's row (jobs/cluster/sql.py), one to one; the decisions (jobs/decisions.py) read the same."""

    document: dict  # what GET /jobs/{id} answers (the core's shape)
    sequence: int  # submission order, breaks priority ties (the row's seq)
    runner: object = None  # workers.Runner
    version: int = 0  # bumped by every write (the row's compare-and-set)
    token: int = 0  # the last claim's; a worker's moves must hold it
    claimed: bool = False  # a worker holds it (the row's owner)
    ran: bool = False  # started since it was (re)submitted: it may have stored work
    undo: dict = None  # its work must be removed, then it fails with this error (ErrorCode, ...)
    pause_requested: bool = False
    replay: bool = False  # restored after a restart having run: its runner may not know all its work
    step: int = 0  # the step a paused job resumes at (its runner kept its work)
    size: int = 0  # bytes of the request it holds while unfinished (runner.size(); AdvancedRest.MaxPendingBytes)
    load: object = None  # () -> its payload as the store saved it (see LocalStore.saved), or None

    @property
    def id(self):
        return self.document["ID"]

    @property
    def state(self):
        return State(self.document["State"])


@dataclasses.dataclass(frozen=True)
class Claim:
    """A job handed to a worker by its store (see interfaces.JobStore): the token each of its moves must still
    hold, and the runner that does its work."""

    job_id: str
    job_type: str
    token: int
    runner: object  # workers.Runner
    undoing: bool = False  # claimed to remove its work (a cancel accepted while no worker ran it)
    replay: bool = False  # its work may be more than its runner knows (an earlier run: before a restart, or on
    # another replica): it runs to its end before any undo, to find all of it
    step: int = 0  # where it starts (a paused job on one server: where it stopped)


@dataclasses.dataclass(frozen=True)
class Report:
    """What a worker tells its store with a move: the job's progress, its runtime since its last report, its
    Content, the error it fails with (Move.FAIL) and the steps it has done."""

    progress: float = None  # None: unchanged
    runtime: float = 0.0
    content: dict = None  # None: unchanged
    error: dict = None  # {"ErrorCode", "ErrorDescription", "ErrorDetails"}
    step: int = None


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A store's answer to a worker's move: whether it was written, and what the job's row asks of the job
    (a pause or cancel, sent to any replica)."""

    applied: bool = True
    pause: bool = False
    cancel: bool = False
    # The claim is lost and the job has since failed (its new owner removed its work): what this
    # worker stored after it lost the claim (a step it was in when frozen) must go too.
    orphaned: bool = False
