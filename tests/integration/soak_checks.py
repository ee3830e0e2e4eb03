"""The checks after a soak (soak_workload.py): every instance told of exists once, nothing else is
stored, cancelled jobs left nothing; and each Orthanc's VmRSS, sampled while it runs.
"""
import collections
import json
import threading
import time
from dataclasses import dataclass, field

from fuzz_rules import memory_kib, orthanc_pid
from servers import new_session

REQUEST_TIMEOUT = 120
EXCERPT = 300
NAMED = 10  # stored instances never told of whose AccessionNumber is looked up (names the request)
RSS_EVERY = 5.0  # seconds between two VmRSS samples
# Python plugin versions that never free a POST body handed to a plugin's REST callback, once the plugin
# is loaded: none since 0.2.0, which gives back what Debian 12's 4.0 keeps (README, Memory), so a soak
# on bookworm counts every byte of growth.
KEEPS_BODIES = ()


# -- memory -----------------------------------------------------------------------------------------

class RssMonitor(threading.Thread):
    """VmRSS of each server's Orthanc every RSS_EVERY s, with the create-dicom bytes sent to it so far.

    `samples`: [(seconds since start, {name: VmRSS MB}, {name: body MB sent})].
    """

    def __init__(self, servers, recorder):
        super().__init__(daemon=True)
        self.pids = {server.name: orthanc_pid(server) for server in servers}
        self.keeps_bodies = {server.name: keeps_bodies(server) for server in servers}
        self.recorder = recorder
        self.samples = []
        self.started = time.monotonic()
        self._done = threading.Event()

    def sample(self):
        rss = {name: memory_kib(pid) * 1024 / 1e6 for name, pid in self.pids.items()}
        sent = {name: self.recorder.sent[name] / 1e6 for name in self.pids}
        self.samples.append((time.monotonic() - self.started, rss, sent))

    def run(self):
        self.sample()
        while not self._done.wait(RSS_EVERY):
            self.sample()

    def stop(self):
        self._done.set()
        self.join()
        self.sample()

    def at(self, seconds):
        """The sample nearest `seconds` after the start."""
        return min(self.samples, key=lambda s: abs(s[0] - seconds))

    def growth(self, since):
        """{name: (VmRSS growth MB, the part not explained by kept bodies)} from `since` s to the end.

        On a Python plugin that keeps every POST body (KEEPS_BODIES), the bodies sent meanwhile are
        subtracted from the second number.
        """
        _, rss0, sent0 = self.at(since)
        _, rss1, sent1 = self.samples[-1]
        return {name: (rss1[name] - rss0[name], rss1[name] - rss0[name]
                       - (sent1[name] - sent0[name] if self.keeps_bodies[name] else 0.0)) for name in self.pids}


def keeps_bodies(server):
    """Whether the server's Python plugin is one that never frees a POST body (KEEPS_BODIES)."""
    answer = server.get("/plugins/python")
    return answer.ok and answer.json().get("Version") in KEEPS_BODIES


# -- what exists after the run ---------------------------------------------------------------------

@dataclass
class Verification:
    """What the checks after a run found wrong (all empty: every instance once, nothing left over)."""

    told: int = 0
    missing: list = field(default_factory=list)  # (id, what created it, status)
    wrong_series: list = field(default_factory=list)  # (series id, expected, found, what)
    duplicate_ids: list = field(default_factory=list)
    duplicate_uids: list = field(default_factory=list)  # (SOPInstanceUID, [ids])
    unexpected: list = field(default_factory=list)  # (id, AccessionNumber) stored but never told of
    cancelled_left: list = field(default_factory=list)  # (job id, AccessionNumber, instances found)

    def instance_problems(self):
        return {k: getattr(self, k) for k in ("missing", "wrong_series", "duplicate_ids", "duplicate_uids",
                                               "unexpected") if getattr(self, k)}


def _get_json(session, server, path, **kw):
    answer = session.get(server.url + path, timeout=REQUEST_TIMEOUT, **kw)
    return answer.status_code, (answer.json() if answer.status_code == 200 else answer.text[:EXCERPT])


def verify(servers, rec, threads=8):
    """Look up every instance the clients were told exists, spread over the servers: a Verification.

    Single instances with `GET /instances/{id}`, series with `GET /series/{id}/instances` (each
    instance's JSON); then `GET /instances` for what is stored but was never told of, and
    `/tools/find` by AccessionNumber for what is left of each cancelled job.
    """
    v = Verification()

    def look_up(session, entry):
        path = f"/instances/{entry[0]}" if len(entry) == 2 else f"/series/{entry[0]}/instances"
        return entry, *_get_json(session, servers[hash(entry[0]) % len(servers)], path)

    found = []  # (instance id, SOPInstanceUID, what created it)
    for entry, status, answer in _run(rec.instances + rec.series, look_up, servers[0].session.auth, threads):
        what = entry[-1]
        if len(entry) == 2:
            if status == 200:
                found.append((entry[0], answer["MainDicomTags"]["SOPInstanceUID"], what))
            else:
                v.missing.append((entry[0], what, status))
        else:
            members = answer if status == 200 else []
            if len(members) != entry[1]:
                v.wrong_series.append((entry[0], entry[1], len(members) if status == 200 else status, what))
            found += [(i["ID"], i["MainDicomTags"]["SOPInstanceUID"], what) for i in members]
    v.told = len(found) + len(v.missing)
    ids = collections.Counter(i for i, _, _ in found)
    v.duplicate_ids = [i for i, n in ids.items() if n > 1]
    uids = collections.defaultdict(set)
    for instance_id, uid, _ in found:
        uids[uid].add(instance_id)
    v.duplicate_uids = [(uid, sorted(i)) for uid, i in uids.items() if len(i) > 1]
    stored = set(servers[0].get("/instances", timeout=REQUEST_TIMEOUT).json())
    told = set(ids) | {i for i, _, _ in v.missing}
    for k, instance_id in enumerate(sorted(stored - told)):
        accession = None
        if k < NAMED:  # enough to name the requests that left them
            accession = servers[0].get(f"/instances/{instance_id}/simplified-tags").json().get("AccessionNumber")
        v.unexpected.append((instance_id, accession))
    for job_id, accession in rec.cancelled:
        left = servers[0].post("/tools/find", data=json.dumps(
            {"Level": "Instance", "Query": {"AccessionNumber": accession}})).json()
        if left:
            v.cancelled_left.append((job_id, accession, len(left)))
    return v


def _run(items, task, auth, threads):
    """[task(session, item)] over `threads` threads, each with its own Session."""
    items = list(items)
    out = [[] for _ in range(threads)]

    def work(k):
        with new_session(auth) as session:
            out[k] = [task(session, item) for item in items[k::threads]]

    workers = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [result for chunk in out for result in chunk]
