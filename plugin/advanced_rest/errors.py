"""Errors the plugin answers, shaped like Orthanc's own REST errors.

    AdvancedRestError            (HTTP status + Orthanc error code + details)
    ├── BadRequest               malformed body, wrong field type                  400 / 8
    ├── BadFileFormat            content that cannot be decoded                    400 / 15
    ├── ParameterOutOfRange      a value outside what is accepted                  400 / 3
    │   └── LimitExceeded        beyond an AdvancedRest limit, named               400 / 3
    ├── BadParameterType         a value of the wrong JSON type                    400 / 5
    ├── UnknownDicomTag          a tag name no dictionary knows                    400 / 27
    ├── UnsupportedFormat        a format the plugin cannot convert                415 / 3000
    ├── UnknownResource          an Orthanc id that does not exist                 404 / 17
    ├── UnknownJob               a job id that does not exist                      404 / 7
    ├── IllegalTransition        a job action its state does not allow             400 / 8
    ├── MethodNotAllowed         a method the route lacks (on this Orthanc)        405, with Allow
    ├── Unavailable              not now: try again after Retry-After              503 / 3, with Retry-After
    │   ├── QueueFull            MaxPendingJobs jobs, or MaxPendingBytes, unfinished
    │   ├── JobsLoading          the saved jobs not loaded yet (at start)
    │   ├── DeliveryBusy         a webhook delivery (or test) being sent right now
    │   ├── CoreJobsUnavailable  the core's jobs not readable in time (HTTP loopback)
    │   ├── AccessUnknown        the site's rules could not be asked (HTTP loopback)
    │   └── OutputsBusy          AdvancedRest.MaxConcurrentOutputs core outputs already served
    ├── AccessDenied             the site's rules refuse this user the core path   403 / 45
    ├── CrossSiteRefused         a browser's cross-site request changing something 403 / 45
    ├── DatabaseUnavailable      Orthanc's or the cluster's database unreachable   503 / 36
    ├── RequestTooLarge          a body over MaxRequestBytes or MaxPendingBytes    413 / 3
    ├── NotString                create-dicom: a legacy body's value not a string  400 / 2019
    ├── OverrideTag              create-dicom: a generated tag set without Force   400 / 2020
    ├── UseContent               create-dicom: PixelData in Tags                   400 / 2021
    ├── NoPayload                create-dicom: a series item without Content       400 / 2022
    ├── UseDataUriScheme         create-dicom: Content not a data URI or array     400 / 2023
    ├── InexistentParent         create-dicom: Parent is no patient/study/series   400 / 2024
    ├── ParentIsInstance         create-dicom: Parent is an instance               400 / 2025
    └── OrthancError             any other Orthanc error code, by number

`web.py` turns each into the core's JSON error body. Each class's first docstring line says what
it means to a client: `openapi.py` documents a route's statuses from the classes it declares.
"""

# Orthanc error code -> (message, HTTP status), as the core prints them
# (OrthancFramework Enumerations, 1.10 to 1.13). Codes absent here answer 500.
ORTHANC_ERRORS = {
    -1: ("Internal error", 500),
    1: ("Error encountered within the plugin engine", 500),
    2: ("Not implemented yet", 500),
    3: ("Parameter out of range", 400),
    4: ("The server hosting Orthanc is running out of memory", 500),
    5: ("Bad type for a parameter", 400),
    6: ("Bad sequence of calls", 500),
    7: ("Accessing an inexistent item", 404),
    8: ("Bad request", 400),
    12: ("Badly formatted URI", 400),
    13: ("Inexistent file", 404),
    14: ("Cannot write to file", 500),
    15: ("Bad file format", 400),
    16: ("Timeout", 500),
    17: ("Unknown resource", 404),
    19: ("The file storage is full", 500),
    21: ("Inexistent tag", 404),
    27: ("Unknown DICOM tag", 500),
    28: ("Cannot parse a JSON document", 400),
    29: ("Bad credentials were provided to an HTTP request", 401),
    34: ("Cannot send a response which is acceptable according to the Accept HTTP header", 406),
    36: ("The database is currently not available (probably a transient situation)", 503),
    37: ("This job was canceled", 500),
    43: ("A bad revision number was provided, which might indicate conflict between multiple writers", 409),
    45: ("Access to a resource is forbidden", 403),
    46: ("Duplicate resource", 409),
    2018: ("Cannot store an instance", 500),
    2019: ("Only string values are supported when creating DICOM instances", 400),
    2020: ("Trying to override a value inherited from a parent module", 400),
    2021: ('Use "Content" to inject an image into a new DICOM instance', 400),
    2022: ("No payload is present for one instance in the series", 400),
    2023: ("The payload of the DICOM instance must be specified according to Data URI scheme", 400),
    2024: ("Trying to attach a new DICOM instance to an inexistent resource", 400),
    2025: ("Trying to attach a new DICOM instance to an instance (must be a series, study or patient)", 400),
    2042: ("Cannot override the value of a tag that already exists", 500),
    3000: ("Unsupported media type", 415),
}

HTTP_REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict",
    413: "Request Entity Too Large", 415: "Unsupported Media Type",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
}


class AdvancedRestError(Exception):
    """An error inside the plugin or Orthanc (see Orthanc's log)."""

    code = -1
    status = None  # None: the status Orthanc gives to `code`

    def __init__(self, details=None, *, code=None, status=None):
        super().__init__(details or "")
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details

    @property
    def http_status(self):
        """The HTTP status answered for this error."""
        if self.status is not None:
            return self.status
        return ORTHANC_ERRORS.get(self.code, ("", 500))[1]

    @property
    def message(self):
        """Orthanc's description of the error code."""
        return ORTHANC_ERRORS.get(self.code, ("Error encountered within some plugin", 500))[0]

    @classmethod
    def declared_status(cls):
        """The HTTP status an instance answers unless raised with another code or status."""
        return cls.status if cls.status is not None else ORTHANC_ERRORS.get(cls.code, ("", 500))[1]

    @classmethod
    def meaning(cls):
        """What the error means to a client: the first line of the class's docstring."""
        return cls.__doc__.strip().splitlines()[0].rstrip(".")


class BadRequest(AdvancedRestError):
    """A malformed request: body, field or query parameter."""

    code = 8


class BadFileFormat(AdvancedRestError):
    """Content that cannot be decoded."""

    code = 15


class ParameterOutOfRange(AdvancedRestError):
    """A value outside what is accepted."""

    code = 3


class LimitExceeded(ParameterOutOfRange):
    """A request beyond one of the AdvancedRest limits; the details name the option and its value."""


class BadParameterType(AdvancedRestError):
    """A value of the wrong JSON type."""

    code = 5


class UnknownDicomTag(AdvancedRestError):
    """A tag name no dictionary knows."""

    # The core answers 500 for an unknown tag name; it is the client's mistake.
    code = 27
    status = 400


class UnsupportedFormat(AdvancedRestError):
    """Content that cannot be converted (CMYK or GIF images, Encapsulate of anything but a JPEG...)."""

    # The core answers 500 "Not implemented yet" for content it cannot convert (CMYK, GIF,
    # Encapsulate of a PNG): the content is the client's to change, not a server fault.
    code = 3000


class UnknownResource(AdvancedRestError):
    """An Orthanc id that does not exist."""

    code = 17


class OrthancError(AdvancedRestError):
    """An error of Orthanc's core, with the status the core gives its code (see Orthanc's log)."""


class UnknownJob(AdvancedRestError):
    """No such job, or no such output of a job."""

    code = 7


class IllegalTransition(AdvancedRestError):
    """A job action its state does not allow."""

    code = 8


class MethodNotAllowed(AdvancedRestError):
    """A method the route lacks on this Orthanc, answered with Allow and no body, as the core.

    Orthanc normalises a path before routing: /jobs/ID/.. is /jobs, /jobs/ID/ is /jobs/ID, so a request
    for one operation can reach another route, which lacks its method.
    """

    code = 8
    status = 405

    def __init__(self, allowed, details=None):
        super().__init__(details)
        self.allowed = allowed


class Unavailable(AdvancedRestError):
    """Not now: try again after Retry-After."""

    code = 3
    status = 503
    retry_after = 5  # seconds, sent as the Retry-After header


class QueueFull(Unavailable):
    """AdvancedRest.MaxPendingJobs plugin jobs, or MaxPendingBytes of requests, unfinished (see Retry-After)."""


class JobsLoading(Unavailable):
    """The plugin's saved jobs are not loaded yet, just after Orthanc started (see Retry-After)."""


class DeliveryBusy(Unavailable):
    """A webhook delivery (or a test of its endpoint) is being sent right now: try again once it ends."""

    retry_after = 1


class CoreJobsUnavailable(Unavailable):
    """The core's jobs could not be read through Orthanc's HTTP server in time: a quarter of its
    HttpThreadsCount already read them, or it did not answer (see Retry-After)."""


class AccessUnknown(Unavailable):
    """Whether the site's rules allow this user the core path the route stands for could not be asked of
    Orthanc's HTTP server in time (see Retry-After)."""


class OutputsBusy(Unavailable):
    """AdvancedRest.MaxConcurrentOutputs outputs of core jobs are already being served (see Retry-After)."""


class AccessDenied(AdvancedRestError):
    """The site's rules (RegisteredUsers, a Lua filter, an authorization plugin) refuse this user the core
    path this route stands for."""

    code = 45
    status = 403


class CrossSiteRefused(AdvancedRestError):
    """A browser sent this state-changing request from another site (Sec-Fetch-Site, or an Origin other than
    the server's): a page elsewhere cannot act with the user's credentials (AdvancedRest.TrustedOrigins)."""

    code = 45
    status = 403


class DatabaseUnavailable(AdvancedRestError):
    """Orthanc's database, or the cluster's PostgreSQL, cannot be reached for now."""

    code = 36  # Orthanc's own code for it: HTTP 503


class RequestTooLarge(AdvancedRestError):
    """A body over AdvancedRest.MaxRequestBytes, or an asynchronous one over AdvancedRest.MaxPendingBytes.

    The first is refused before anything is parsed, the second before anything is stored."""

    code = 3
    status = 413


# create-dicom's own error codes: the core answers them for these mistakes, and so does the plugin.

class NotString(AdvancedRestError):
    """A legacy body (no Tags field) with a value that is not a string."""

    code = 2019


class OverrideTag(AdvancedRestError):
    """A tag the plugin generates or the parent gives, set by the request without Force."""

    code = 2020


class UseContent(AdvancedRestError):
    """PixelData in Tags: images go in Content."""

    code = 2021


class NoPayload(AdvancedRestError):
    """An item of a series without Content."""

    code = 2022


class UseDataUriScheme(AdvancedRestError):
    """Content that is neither a data URI string nor an array of them."""

    code = 2023


class InexistentParent(AdvancedRestError):
    """A Parent that names no patient, study or series (a non-string one included, as the core)."""

    code = 2024


class ParentIsInstance(AdvancedRestError):
    """A Parent that names an instance: a new instance attaches to a series, study or patient."""

    code = 2025
