"""create-dicom as a job: one step per instance, everything stored or nothing."""
import itertools
import uuid

from ..jobs.engine import Runner
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
    """Builds and stores file `index` at step `index`; rollback deletes what it stored."""

    def __init__(self, plan, store, delete, payload=None, user_sop_uid=False):
        self._plan, self._store, self._delete = plan, store, delete
        self._payload = payload
        # Run again after a restart, a step finds its instance already stored: it is
        # ours, since its UID derives from the job's seed, unless the request set it.
        self._ours = ("Success",) if user_sop_uid else ("Success", "AlreadyStored")
        self._answers = {}

    def steps(self):
        return self._plan.count

    def step(self, index):
        self._answers[index] = self._store(self._plan.file(index))

    def content(self):
        return {"Description": "REST API", "InstancesCount": self._plan.count, "InstancesStored": len(self._answers)}

    def result(self):
        if self._plan.is_series:
            series = self._answers[self._plan.count - 1]["ParentSeries"]
            return {"ID": series, "Path": "/series/%s" % series, "Status": "Success"}, {}
        return dict(self._answers[0]), {}

    def rollback(self):
        remove_stored(self._answers.values(), self._delete, self._ours)
        self._answers.clear()

    def payload(self):
        return self._payload
