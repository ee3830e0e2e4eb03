"""create-dicom as a job: one step per instance, everything stored or nothing."""
import itertools
import uuid

from ..errors import AdvancedRestError
from ..jobs.workers import Runner
from .storing import remove_stored

JOB_TYPE = "CreateDicom"


def seeded_identifiers(seed):
    """(new_uid, item_uid, new_patient_id) derived from `seed`: a job run again makes the same files,
    so that storing them again finds them already stored instead of duplicating them."""
    counter = itertools.count()
    namespace = uuid.UUID(seed)

    def new_uid():
        return "2.25.%d" % uuid.uuid5(namespace, "uid-%d" % next(counter)).int

    def item_uid(index):
        return "2.25.%d" % uuid.uuid5(namespace, "item-%d" % index).int

    def new_patient_id():
        return str(uuid.uuid5(namespace, "patient"))

    return new_uid, item_uid, new_patient_id


class CreateDicomRunner(Runner):
    """Builds and stores file `index` at step `index`; rollback deletes what it stored.

    Parked (the job waits, its payload saved), it keeps only what it stored and drops the request
    and its plan; its next step re-creates the plan from the saved payload with `replan(payload)`
    (a runner of the same payload, see CreateDicom.runner_from): the same files, since the
    identifiers derive from the job's seed.
    """

    def __init__(self, plan, store, delete, payload=None, user_sop_uid=False, replan=None):
        self._plan, self._store, self._delete = plan, store, delete
        self._payload = payload
        self._count, self._is_series = plan.count, plan.is_series
        body = (payload or {}).get("Body")
        self._size = len(body) if body is not None else 0
        # Who asked (route.requester: the user Orthanc authenticated, the proxy's last hop), shown in the job's
        # Content for whoever may read the job (the jobs page's "creator"); absent from jobs saved before 0.2.0.
        self._creator = (payload or {}).get("Requester")
        self._replan = replan
        self._load = None  # () -> the payload as saved, once parked
        # Run again after a restart, a step finds its instance already stored: it is
        # ours, since its UID derives from the job's seed, unless the request set it.
        self._ours = ("Success",) if user_sop_uid else ("Success", "AlreadyStored")
        self._answers = {}

    def steps(self):
        return self._count

    def step(self, index):
        plan = self._current_plan()
        data = plan.file(index)
        self._answers[index] = self._store(data, plan.identity)  # its identity: counted without a read-back

    def content(self):
        content = {"Description": "REST API", "InstancesCount": self._count, "InstancesStored": len(self._answers)}
        if self._creator:
            content["Creator"] = self._creator
        return content

    def result(self):
        if self._is_series:
            series = self._answers[self._count - 1]["ParentSeries"]
            return {"ID": series, "Path": "/series/%s" % series, "Status": "Success"}
        return dict(self._answers[0])

    def rollback(self):
        remove_stored(self._answers.values(), self._delete, self._ours)
        self._answers.clear()

    def payload(self):
        if self._payload is None and self._load is not None:
            return self._load()
        return self._payload

    def size(self):
        return self._size

    def park(self, load):
        if load is not None and self._replan is None:
            return  # it could not re-create its plan: it keeps it
        self._plan = self._payload = None
        self._load = load

    def _current_plan(self):
        if self._plan is None:
            payload = self._load() if self._load is not None else None
            if payload is None:
                raise AdvancedRestError("The saved request of this job cannot be read: it cannot run again")
            self._plan = self._replan(payload)._plan  # the payload itself is not kept: the plan has it all
        return self._plan
