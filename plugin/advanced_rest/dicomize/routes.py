"""POST /tools/create-dicom: parse, build in memory, then store everything or nothing."""
import dataclasses
import datetime
import json
import logging
import uuid

from .. import __version__
from ..errors import AdvancedRestError
from ..web import json_response
from . import builder, charsets, parents, request as requests_

logger = logging.getLogger(__name__)


def new_uid():
    """A new UID under the 2.25 root (derived from a random UUID, no registered root needed)."""
    return "2.25.%d" % uuid.uuid4().int


@dataclasses.dataclass(frozen=True)
class Services:
    """The calls into Orthanc that create-dicom needs."""

    rest_get_json: object  # uri -> parsed JSON
    rest_post: object  # (uri, body bytes) -> bytes
    rest_delete: object  # uri -> None
    default_encoding: object  # () -> Orthanc encoding name


class CreateDicom:
    """The create-dicom handler, bound to settings, dictionary and Orthanc's services."""

    def __init__(self, settings, dictionary, services, clock=None, uid=new_uid):
        self._settings = settings
        self._dictionary = dictionary
        self._services = services
        self._clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self._uid = uid

    def environment(self):
        """The builder's environment for one request (now, current default encoding)."""
        return builder.Environment(
            dictionary=self._dictionary,
            default_encoding=charsets.from_name(self._services.default_encoding()),
            default_private_creator=self._settings.default_private_creator,
            max_image_pixels=self._settings.max_image_pixels,
            strict=self._settings.strict_dicom,
            software_version="advanced-rest %s" % __version__,
            now=self._clock(),
            new_uid=self._uid,
            new_patient_id=lambda: str(uuid.uuid4()),
        )

    def build(self, body):
        """(request, files) for a body; nothing stored."""
        parsed = requests_.parse(body)
        parent = None
        if parsed.parent is not None:
            parent = parents.resolve(parsed.parent, self._services.rest_get_json)
        return parsed, builder.build(parsed, self.environment(), parent)

    def store(self, files):
        """Store all `files`, or none: what was stored is deleted if one fails; the answers."""
        answers = []
        try:
            for data in files:
                answers.append(json.loads(self._services.rest_post("/instances", data)))
        except Exception:
            for answer in answers:
                if answer.get("Status") == "Success":
                    try:
                        self._services.rest_delete("/instances/%s" % answer["ID"])
                    except AdvancedRestError:
                        logger.exception("Could not remove instance %s after a failed series", answer["ID"])
            raise
        return answers

    def __call__(self, request):
        parsed, files = self.build(request.body)
        answers = self.store(files)
        if isinstance(parsed.content, tuple):
            series = answers[-1]["ParentSeries"]
            return json_response({"ID": series, "Path": "/series/%s" % series, "Status": "Success"})
        return json_response(answers[0])
