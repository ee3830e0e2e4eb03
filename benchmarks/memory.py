#!/usr/bin/env python3
"""Peak memory of one create-dicom request: the plugin's route against the core's, by body size.

Starts two Orthanc servers of one leg with the test harness (tests/integration/servers.py): one
without any plugin (the core answers POST /tools/create-dicom) and one with our plugin, configured
with "AdvancedRest": {"MaxRequestBytes": 400000000, "MaxImageBytes": 2000000000} so that the
largest bodies are accepted. For each body size (1, 10, 100 and 300 MB by default) and kind (an
application/octet-stream data URI, a PDF, a PNG of incompressible noise), the same synchronous
request goes to the core, then to the plugin. While it runs, a thread reads the Orthanc process's
VmRSS from /proc/PID/status every ~10 ms; the peak-RSS mark (VmHWM) is reset before the request
(/proc/PID/clear_refs) and read after it, which catches a peak between two samples. Peak growth
= the larger of the two peaks minus VmRSS just before the request. The table gives the growth and
growth / body size; targets (issue 26) for the plugin: at most the core's growth for a 100 MB body,
at most 4 x the body otherwise. Targets are printed, never asserted. Created instances are deleted
between requests.

    .venv/test/bin/python benchmarks/memory.py [--leg bookworm|forky] [--sizes 1,10,100,300]
                                               [--kinds octet,pdf,png] [--json FILE]
"""
import base64
import json
import sys
import threading
import time

import numpy as np
import requests
from PIL import Image

from bench import columns_table, machine, open_leg, options, report, servers, verdict
from create_dicom import encoded, pdf_bytes
from fuzz_rules import memory_kib, orthanc_pid  # tests/integration, on sys.path once bench is imported

TARGET = 4.0  # the plugin's peak RSS growth at most this many times the body size
CORE_TARGET_MB = 100  # for a body of this size, the target is the core's own growth instead
MB = 1000 * 1000
ENDPOINT = "/tools/create-dicom"
SAMPLE_SECONDS = 0.01
PLUGIN_CONFIG = {"AdvancedRest": {"MaxRequestBytes": 400000000, "MaxImageBytes": 2000000000}}
KINDS = {"octet": "application/octet-stream", "pdf": "application/pdf", "png": "image/png"}


# -- bodies -------------------------------------------------------------------------------------

def payload(kind, size):
    """Content of `size` bytes or a little less: random bytes, a PDF, or a noise PNG (RGB)."""
    if kind == "octet":
        return np.random.RandomState(1).randint(0, 256, size, dtype=np.uint8).tobytes()
    if kind == "pdf":
        return pdf_bytes(size - size % 2)
    side = max(1, int((size / 3) ** 0.5))  # noise does not compress: the PNG is about its raw size
    pixels = np.random.RandomState(2).randint(0, 256, (side, side, 3), dtype=np.uint8)
    return encoded(Image.fromarray(pixels, "RGB"), "PNG", compress_level=1)


def body(kind, megabytes):
    """(JSON body bytes of about `megabytes` MB, content bytes): base64 takes 4 bytes for 3."""
    content = payload(kind, megabytes * MB * 3 // 4 - 1024)
    document = {"Tags": {"PatientName": "Memory^%s" % kind, "StudyDescription": "memory benchmark"},
                "Content": "data:%s;base64,%s" % (KINDS[kind], base64.b64encode(content).decode("ascii"))}
    return json.dumps(document).encode("ascii"), len(content)


# -- measurement --------------------------------------------------------------------------------

class Sampler(threading.Thread):
    """Reads VmRSS of `pid` every SAMPLE_SECONDS until stopped; keeps the largest (KiB)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.samples = 0
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            self.peak_kib = max(self.peak_kib, memory_kib(self.pid, "VmRSS"))
            self.samples += 1
            self._done.wait(SAMPLE_SECONDS)

    def stop(self):
        self._done.set()
        self.join()


def reset_peak(pid):
    """Reset the process's VmHWM to its current RSS (Linux clear_refs 5); whether that worked."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(server, session, data, content_type="application/json"):
    """One create-dicom request with its memory watched; the created resource is then deleted."""
    pid = orthanc_pid(server)
    hwm_reset = reset_peak(pid)
    before_kib = memory_kib(pid, "VmRSS")
    sampler = Sampler(pid)
    sampler.start()
    began = time.perf_counter()
    try:
        answer = session.post(server.url + ENDPOINT, data=data, timeout=900,
                              headers={"Content-Type": content_type})
    finally:
        seconds = time.perf_counter() - began
        sampler.stop()
    peak_kib = max(sampler.peak_kib, memory_kib(pid, "VmHWM") if hwm_reset else 0)
    if answer.status_code == 200:
        session.delete(server.url + answer.json()["Path"], timeout=300)
    return {"status": answer.status_code, "error": "" if answer.ok else answer.text[:300], "seconds": seconds,
            "before_mib": before_kib / 1024, "peak_growth_mb": (peak_kib - before_kib) * 1024 / MB,
            "samples": sampler.samples, "hwm": hwm_reset}


# -- report -------------------------------------------------------------------------------------

def cell(result, body_bytes):
    """(growth, ratio) cells of one measurement; the HTTP status instead when it failed."""
    if result["status"] != 200:
        return "HTTP %d" % result["status"], "-"
    return "%.0f" % result["peak_growth_mb"], "%.2f" % (result["peak_growth_mb"] * MB / body_bytes)


def table(results, m):
    rows = []
    for r in results["cases"]:
        core_growth, core_ratio = cell(r["core"], r["body_bytes"])
        plugin_growth, plugin_ratio = cell(r["plugin"], r["body_bytes"])
        if r["megabytes"] == CORE_TARGET_MB:
            target = "<= core"
            passed = r["core"]["status"] == 200 and r["plugin"]["peak_growth_mb"] <= r["core"]["peak_growth_mb"]
        else:
            target = "<= %.0fx" % TARGET
            passed = r["plugin"]["peak_growth_mb"] * MB <= TARGET * r["body_bytes"]
        passed = passed and r["plugin"]["status"] == 200
        rows.append("| %s %d MB | %.1f | %s | %s | %s | %s | %s %s |" % (
            r["kind"], r["megabytes"], r["body_bytes"] / MB, core_growth, core_ratio, plugin_growth, plugin_ratio,
            target, verdict(passed)))
    return columns_table(["case", "body MB", "core peak +MB", "core x body", "plugin peak +MB", "plugin x body",
                          "target (plugin)"], rows, m)


def add_options(parser):
    parser.add_argument("--sizes", default="1,10,100,300",
                        help="body sizes in MB (10^6 bytes), comma-separated; default %(default)s")
    parser.add_argument("--kinds", default="octet,pdf,png",
                        help="content kinds, comma-separated, of %s; default %%(default)s" % ",".join(KINDS))


def main():
    args = options(__doc__, add_options, json_help="write the raw numbers to FILE")
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        sys.exit("unknown kind(s) %s; known: %s" % (", ".join(unknown), ", ".join(KINDS)))
    leg = open_leg(args.leg)
    began = time.monotonic()

    print(f"starting Orthanc ({leg.name}) with and without the plugin ...", file=sys.stderr)
    with servers(leg, ("core", {"plugin": False}),
                 ("plugin", {"plugin": True, "config": PLUGIN_CONFIG})) as (core, plugin):
        m = machine(leg, core, plugin)
        m.update(plugin_config=PLUGIN_CONFIG)
        sessions = {"core": requests.Session(), "plugin": requests.Session()}
        warm, _ = body("png", 1)  # loads the decoders and the writer before the first measurement
        for role, server in (("core", core), ("plugin", plugin)):
            measure(server, sessions[role], warm)
        results = {"machine": m, "target": TARGET, "cases": []}
        for megabytes in sizes:
            for kind in kinds:
                t0 = time.monotonic()
                data, content_bytes = body(kind, megabytes)
                case = {"kind": kind, "megabytes": megabytes, "body_bytes": len(data), "content_bytes": content_bytes}
                for role, server in (("core", core), ("plugin", plugin)):
                    case[role] = measure(server, sessions[role], data)
                del data
                results["cases"].append(case)
                print("  %s %d MB: core +%.0f MB (HTTP %d, %.1f s), plugin +%.0f MB (HTTP %d, %.1f s) (%.0f s)" % (
                    kind, megabytes, case["core"]["peak_growth_mb"], case["core"]["status"], case["core"]["seconds"],
                    case["plugin"]["peak_growth_mb"], case["plugin"]["status"], case["plugin"]["seconds"],
                    time.monotonic() - t0), file=sys.stderr)
        for session in sessions.values():
            session.close()

    report(results, began, table(results, m), args.json)


if __name__ == "__main__":
    main()
