#!/usr/bin/env python3
"""A 100 MB video through create-dicom: time and peak memory, as a data URI and as a multipart part.

Makes an MP4 (H.264 High, 1920x1080, of about `--megabytes` MB) with Debian's ffmpeg (a benchmark
dependency only: the plugin never runs it), then on one leg starts two Orthanc servers with the test
harness (tests/integration/servers.py), one without any plugin and one with ours (MaxRequestBytes raised
as in memory.py), and sends, one request at a time, with Orthanc's memory watched as memory.py does
(VmRSS sampled, VmHWM reset before each request):

- to the plugin, the video as a base64 data URI in JSON (a third larger than the file), and as a part of a
  `multipart/related` body (the file as it is);
- to the core, which takes no video, the same bytes as an `application/octet-stream` data URI: the core's
  nearest request (one encapsulated blob of the same size), the baseline of the ratios.

Printed: seconds and peak growth (MB and x the video's size) of each, and the plugin / core ratios.
Targets (issue 26's bound): peak at most 4 x the body; printed, never asserted.

    .venv/test/bin/python benchmarks/video.py [--leg bookworm|forky] [--megabytes 100] [--json FILE]
"""
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time

import requests

from bench import columns_table, machine, open_leg, options, report, servers, verdict
from memory import MB, PLUGIN_CONFIG, TARGET, measure

BOUNDARY = "advanced-rest-benchmark"
MULTIPART = 'multipart/related; type="application/json"; boundary=%s' % BOUNDARY
BITRATE = 80  # Mbit/s: an H.264 stream of ~10 MB a second


def make_video(megabytes):
    """The bytes of an H.264 MP4 of about `megabytes` MB (noise on a test pattern, so it does not shrink)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("ffmpeg is not installed (make test-packages installs it)")
    seconds = max(1.0, megabytes * 8.0 / BITRATE)
    with tempfile.TemporaryDirectory() as folder:
        path = folder + "/video.mp4"
        subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc2=size=1920x1080:rate=25:duration=%.1f,noise=alls=60:allf=t" % seconds,
                        "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "high", "-level", "4.1",
                        "-pix_fmt", "yuv420p", "-b:v", "%dM" % BITRATE, "-maxrate", "%dM" % BITRATE,
                        "-bufsize", "%dM" % BITRATE, path], check=True, timeout=900)
        with open(path, "rb") as f:
            return f.read()


def as_data_uri(mime, data):
    document = {"Tags": {"PatientName": "Video^Benchmark"},
                "Content": "data:%s;base64,%s" % (mime, base64.b64encode(data).decode("ascii"))}
    return json.dumps(document).encode("ascii")


def as_multipart(data):
    request = json.dumps({"Tags": {"PatientName": "Video^Benchmark"}, "Content": "cid:video"}).encode()
    return b"".join([b"--%s\r\nContent-Type: application/json\r\n\r\n" % BOUNDARY.encode(), request,
                     b"\r\n--%s\r\nContent-Type: video/mp4\r\nContent-ID: <video>\r\n\r\n" % BOUNDARY.encode(), data,
                     b"\r\n--%s--\r\n" % BOUNDARY.encode()])


def add_options(parser):
    parser.add_argument("--megabytes", type=int, default=100, help="size of the video, MB (10^6 bytes)")


def main():
    args = options(__doc__, add_options, json_help="write the raw numbers to FILE")
    leg = open_leg(args.leg)
    began = time.monotonic()
    print("making a video of about %d MB with ffmpeg ..." % args.megabytes, file=sys.stderr)
    video = make_video(args.megabytes)
    results = {"video_bytes": len(video), "cases": {}}
    print(f"starting Orthanc ({leg.name}) with and without the plugin ...", file=sys.stderr)
    with servers(leg, ("core", {"plugin": False}),
                 ("plugin", {"plugin": True, "config": PLUGIN_CONFIG})) as (core, plugin):
        m = machine(leg, core, plugin)
        results["machine"] = m
        cases = (("core, octet-stream data URI", core, lambda: as_data_uri("application/octet-stream", video),
                  "application/json"),
                 ("plugin, video data URI", plugin, lambda: as_data_uri("video/mp4", video), "application/json"),
                 ("plugin, multipart part", plugin, lambda: as_multipart(video), MULTIPART))
        for name, server, make_body, content_type in cases:
            data = make_body()
            session = requests.Session()
            measure(server, session, as_data_uri("application/octet-stream", b"warm"), "application/json")
            result = measure(server, session, data, content_type)
            result["body_bytes"] = len(data)
            results["cases"][name] = result
            del data
            print("  %s: HTTP %d, %.1f s, +%.0f MB" % (name, result["status"], result["seconds"],
                                                      result["peak_growth_mb"]), file=sys.stderr)
    report(results, began, table(results, m), args.json)


def table(results, m):
    video = results["video_bytes"]
    core = results["cases"]["core, octet-stream data URI"]
    rows = []
    for name, r in results["cases"].items():
        if r["status"] != 200:
            rows.append("| %s | HTTP %d | | | | | |" % (name, r["status"]))
            continue
        passed = r["peak_growth_mb"] * MB <= TARGET * r["body_bytes"]
        rows.append("| %s | %.1f | %.2f | %.0f | %.2f | %.2f | <= %.0f x body: %s |" % (
            name, r["body_bytes"] / MB, r["seconds"], r["peak_growth_mb"], r["peak_growth_mb"] * MB / video,
            r["seconds"] / core["seconds"] if core["status"] == 200 else float("nan"), TARGET, verdict(passed)))
    return columns_table(["case (video %.0f MB)" % (video / MB), "body MB", "seconds", "peak +MB",
                          "peak x video", "time / core", "target"], rows, m)


if __name__ == "__main__":
    main()
