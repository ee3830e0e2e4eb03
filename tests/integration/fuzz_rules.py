"""The rules every fuzzed request to the plugin must keep, and the core as their oracle.

- The plugin answers 2xx, or 4xx with the core's JSON error document (405 excepted: the core
  sends it without a body, and so does the plugin).
- A 5xx only where the core of the same leg answers a 5xx (or dies) for the same request.
- The plugin's Orthanc is alive afterwards (GET /system).

The core may die on what it is sent: it is restarted on the same storage and its answer counts as
a 5xx (unless its memory was capped, below). A dead plugin's Orthanc is restarted too, so that the tests after a failure still have their
servers; the failure stays.

The core decodes an image into a buffer of the size its header announces, zero-filled before the
data is read: a forged header makes it take gigabytes. `cap_address_space` keeps it to a few
hundred MiB more than it has; what the cap causes (an out-of-memory error, a crash) tells nothing
about how the core would answer, so such an answer excuses no 5xx of the plugin.
"""
import json
import resource

import requests

ERROR_KEYS = {"HttpError", "HttpStatus", "Message", "Method", "OrthancError", "OrthancStatus", "Uri"}
ERROR_TYPES = {"HttpError": str, "HttpStatus": int, "Message": str, "Method": str, "OrthancError": str,
               "OrthancStatus": int, "Uri": str, "Details": str}
CRASHED = "crashed"  # the status recorded for a request the server did not survive
CAPPED = "unknown (the core ran out of its capped memory)"
NOT_ENOUGH_MEMORY = 4  # Orthanc's error code


def send(server, method, path, **kw):
    """(status, body text) of one request; (CRASHED, why) when the connection broke."""
    try:
        answer = server.request(method, path, **kw)
    except requests.RequestException as error:
        return CRASHED, "%s: %s" % (type(error).__name__, error)
    return answer.status_code, answer.text


def alive(server, timeout=10):
    """Whether the server answers GET /system with 200."""
    try:
        return server.get("/system", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def revive(server):
    """Restart a server that does not answer GET /system any more; whether it had to be."""
    if alive(server):
        return False
    server.kill()
    server.start()
    return True


def cap_address_space(server, headroom_mib):
    """Limit the server's Orthanc to its current virtual memory plus `headroom_mib` (RLIMIT_AS).

    Only the soft limit: raising a hard limit again needs CAP_SYS_RESOURCE, which containers lack.
    """
    pid = orthanc_pid(server)
    limit = memory_kib(pid, "VmSize") * 1024 + (headroom_mib << 20)
    resource.prlimit(pid, resource.RLIMIT_AS, (limit, resource.prlimit(pid, resource.RLIMIT_AS)[1]))


def uncap_address_space(server):
    """Lift cap_address_space's limit (the soft limit back to the hard one)."""
    if alive(server):
        pid = orthanc_pid(server)
        hard = resource.prlimit(pid, resource.RLIMIT_AS)[1]
        resource.prlimit(pid, resource.RLIMIT_AS, (resource.RLIM_INFINITY, hard))


def capped_answer(status, text):
    """The core's (status, text) under cap_address_space, with CAPPED where the cap decided it."""
    if status == CRASHED:
        return CAPPED, text
    if isinstance(status, int) and status >= 500:
        try:
            if json.loads(text).get("OrthancStatus") == NOT_ENOUGH_MEMORY:
                return CAPPED, text
        except (ValueError, AttributeError):
            pass
    return status, text


def error_body_problem(status, text, method, uri):
    """Why `text` is not the core's JSON error document of a `status` answer to `method uri`, or None."""
    if status == 405:
        return None  # Orthanc's own 405 has an Allow header and no body
    try:
        document = json.loads(text)
    except ValueError:
        return "the %d answer is not JSON: %r" % (status, text[:200])
    if not isinstance(document, dict):
        return "the %d answer is not a JSON object: %r" % (status, text[:200])
    missing = ERROR_KEYS - set(document)
    if missing:
        return "the %d answer lacks %s: %r" % (status, ", ".join(sorted(missing)), text[:300])
    extra = set(document) - ERROR_KEYS - {"Details"}
    if extra:
        return "the %d answer has unexpected keys %s" % (status, ", ".join(sorted(extra)))
    for key, kind in ERROR_TYPES.items():
        if key in document and (not isinstance(document[key], kind) or isinstance(document[key], bool)):
            return "the %d answer's %s is not a %s: %r" % (status, key, kind.__name__, document[key])
    if document["HttpStatus"] != status:
        return "the %d answer says HttpStatus %r" % (status, document["HttpStatus"])
    if document["Method"] != method:
        return "the %d answer says Method %r, not %r" % (status, document["Method"], method)
    if uri is not None and document["Uri"] != uri:
        return "the %d answer says Uri %r, not %r" % (status, document["Uri"], uri)
    return None


def gist(text, limit=200):
    """An answer in a few words: an error's Details (or Message), else the start of the text."""
    try:
        document = json.loads(text)
        if isinstance(document, dict) and ("Details" in document or "Message" in document):
            text = document.get("Details") or document.get("Message")
    except ValueError:
        pass
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def is_server_error(status):
    return status == CRASHED or (isinstance(status, int) and status >= 500)


def verdict(plugin_status, plugin_text, core_status, method, uri):
    """The rule the plugin's answer breaks (a sentence), or None. core_status: the core's answer
    to the same request (an int, CRASHED or CAPPED)."""
    if plugin_status == CRASHED:
        return "the plugin's Orthanc did not answer: %s" % plugin_text
    if 200 <= plugin_status < 300:
        return None
    if 400 <= plugin_status < 500:
        return error_body_problem(plugin_status, plugin_text, method, uri)
    if plugin_status >= 500 and is_server_error(core_status):
        return None
    return "the plugin answered %d (%s) where the core answered %s" % (plugin_status, gist(plugin_text), core_status)


def finish_job(plugin, answer_text, timeout=60):
    """Wait until the job an asynchronous answer names is finished; None, or what went wrong."""
    try:
        job = json.loads(answer_text)["ID"]
    except (ValueError, KeyError, TypeError):
        return "an asynchronous answer without a job ID: %r" % answer_text[:300]
    answer = plugin.get("/jobs/%s/wait" % job, params={"timeout": timeout}, timeout=timeout + 30)
    state = answer.json().get("State") if answer.status_code == 200 else None
    if state not in ("Success", "Failure"):
        return "job %s not finished after %d s: %s %s" % (job, timeout, answer.status_code, gist(answer.text))
    return None


# -- the process behind a server ------------------------------------------------------------------

def orthanc_pid(server):
    """The host pid of the server's Orthanc (the chroot leg's too: `chroot` execs it; the docker
    leg's from its container)."""
    container = getattr(server, "container", None)
    if container is not None:
        container.reload()
        pid = container.attrs["State"]["Pid"]
    else:
        pid = server.process.pid
    with open("/proc/%d/comm" % pid) as f:
        name = f.read().strip()
    if name != "Orthanc":
        raise RuntimeError("process %d of %s is %r, not Orthanc" % (pid, server.name, name))
    return pid


def memory_kib(pid, field="VmRSS"):
    """A /proc/PID/status memory field (VmRSS, VmHWM...) in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s in /proc/%d/status" % (field, pid))


def rss_mib(server):
    """The resident memory of the server's Orthanc, in MiB."""
    return memory_kib(orthanc_pid(server)) / 1024.0


def instances(server):
    """The set of instance ids the server stores."""
    return set(server.get("/instances").json())


def stored_or_revived(server):
    """The set of instance ids the server stores; None when it does not answer (it is restarted,
    as revive does, when GET /system fails too)."""
    try:
        answer = server.get("/instances", timeout=10)
        if answer.status_code == 200:
            return set(answer.json())
    except (requests.RequestException, ValueError):
        pass
    return None if revive(server) else instances(server)


def remove_new(server, before, now=None):
    """Delete what was stored since the ids `before` were listed (`now`: the ids stored now, when just
    listed): a patient all of whose instances are new goes whole, the other new instances one by one
    (requests in proportion to what is new)."""
    new = (instances(server) if now is None else now) - before
    patients = set()
    for instance in new:
        answer = server.get("/instances/%s/patient" % instance)
        if answer.status_code == 200:
            patients.add(answer.json()["ID"])
    for patient in patients:
        ids = {i["ID"] for i in server.get("/patients/%s/instances" % patient).json()}
        if ids and not ids & before:
            server.delete("/patients/%s" % patient)
            new -= ids
    for instance in new:
        server.delete("/instances/%s" % instance)
