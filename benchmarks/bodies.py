#!/usr/bin/env python3
"""Does the leg's Python plugin keep the POST bodies it hands to Python? MB of VmRSS kept per MB posted.

Starts one Orthanc with our plugin on the leg (tests/integration/servers.py), sends a few warm-up
bodies, then `--count` bodies of `--mb` MB each to the plugin's create-dicom route, each one a
valid JSON body whose Tags are refused (400: nothing is built or stored, so what stays is what the
Python plugin keeps of the body), and reads the Orthanc process's VmRSS before and after (after a
pause, so that what is freed is freed). Python plugin 4.0 (Debian 12) alone keeps every body, about
1 MB per MB posted; the plugin gives it back since 0.2.0 (README, Memory), and later Python plugins keep
nothing. Printed, never asserted.

    .venv/test/bin/python benchmarks/bodies.py [--leg bookworm|trixie|forky|docker] [--count 200] [--mb 0.5]
"""
import json
import time

from bench import open_leg, options, servers
from fuzz_rules import memory_kib, orthanc_pid
from servers import new_session

ROUTE = "/advanced-rest/tools/create-dicom"
WARM_UP = 20


def _body(mb):
    """A JSON body of about `mb` MB that the route refuses with 400 after reading it whole."""
    return json.dumps({"Tags": {"NoSuchTag": "x" * int(mb * 1000 * 1000)}}).encode()


def main():
    args = options(__doc__, lambda p: (p.add_argument("--count", type=int, default=200, help="default %(default)s"),
                                       p.add_argument("--mb", type=float, default=0.5, help="default %(default)s")))
    leg = open_leg(args.leg)
    body = _body(args.mb)
    with servers(leg, ("plugin", {"plugin": True})) as (server,):
        session = new_session(server.session.auth)
        pid = orthanc_pid(server)
        statuses = set()
        for _ in range(WARM_UP):
            statuses.add(session.post(server.url + ROUTE, data=body, timeout=60).status_code)
        time.sleep(2)
        before = memory_kib(pid) / 1024
        for _ in range(args.count):
            statuses.add(session.post(server.url + ROUTE, data=body, timeout=60).status_code)
        time.sleep(2)
        after = memory_kib(pid) / 1024
        python_plugin = session.get(server.url + "/plugins/python", timeout=30).json().get("Version", "?")
        orthanc = session.get(server.url + "/system", timeout=30).json().get("Version", "?")
    posted = args.count * len(body) / 1024 / 1024
    result = {"leg": leg.name, "orthanc": orthanc, "python_plugin": python_plugin, "statuses": sorted(statuses),
              "posted_mib": round(posted, 1), "rss_before_mib": round(before, 1), "rss_after_mib": round(after, 1),
              "kept_per_mib_posted": round((after - before) / posted, 2)}
    print(f"{leg.name} (Orthanc {orthanc}, Python plugin {python_plugin}): {args.count} bodies, {posted:.0f} MiB "
          f"posted (answers {sorted(statuses)}): VmRSS {before:.0f} -> {after:.0f} MiB, "
          f"{result['kept_per_mib_posted']:.2f} MiB kept per MiB posted")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
