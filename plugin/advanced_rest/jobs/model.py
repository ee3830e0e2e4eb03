"""Jobs as the core models them: states, the legal moves between them, and their JSON."""
import dataclasses
import datetime

PENDING, RUNNING, SUCCESS, FAILURE, PAUSED, RETRY = "Pending", "Running", "Success", "Failure", "Paused", "Retry"
STATES = (PENDING, RUNNING, SUCCESS, FAILURE, PAUSED, RETRY)
FINISHED = frozenset({SUCCESS, FAILURE})

CANCELED_JOB = 37  # Orthanc's ErrorCode_CanceledJob
CANCELED_DESCRIPTION = "This job was canceled"

# (action, state) -> what happens, as in the core's registry:
#   a state: the job moves there at once; "later": a running job moves at its next
#   step; "nothing": accepted, no change; absent: refused (HTTP 400).
TRANSITIONS = {
    ("pause", PENDING): PAUSED,
    ("pause", RETRY): PAUSED,
    ("pause", RUNNING): "later",
    ("pause", PAUSED): "nothing",
    ("pause", SUCCESS): "nothing",
    ("pause", FAILURE): "nothing",
    ("cancel", PENDING): FAILURE,
    ("cancel", RETRY): FAILURE,
    ("cancel", PAUSED): FAILURE,
    ("cancel", RUNNING): "later",
    ("cancel", SUCCESS): "nothing",
    ("cancel", FAILURE): "nothing",
    ("resume", PAUSED): PENDING,
    ("resubmit", FAILURE): PENDING,
}


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
    step: int = 0  # next step to run

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
