"""The plugin's own share of a small create-dicom, without Orthanc: where its time goes.

The real route (web.Router, CreateDicom, the metrics observers) answers the PNG RGB 64x64 body of
benchmarks/create_dicom.py, with Orthanc's calls faked (storing answers at once, the default encoding
is Latin1): what remains is the Python work the plugin adds to the core's storing. Prints the median
time per request, then, with --profile, cProfile's top functions. Figures, never assertions.
"""
import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "plugin"), os.path.join(REPO, "benchmarks")]

from advanced_rest import settings, web  # noqa: E402
from advanced_rest.create_dicom.route import CreateDicom, Services  # noqa: E402
from advanced_rest.dicomize.dictionary import Dictionary  # noqa: E402
from advanced_rest.metrics.families import Metrics  # noqa: E402

import create_dicom  # noqa: E402  (its cases: the same bodies)

STORED = json.dumps({"ID": "i", "Path": "/instances/i", "ParentPatient": "p", "ParentStudy": "st",
                     "ParentSeries": "se", "Status": "Success"}).encode()


def route(config):
    """(callback as Orthanc calls it, the fake output) for POST /tools/create-dicom."""
    callbacks = {}
    transport = web.Transport(answer=lambda output, body, mime: None,
                              send_status=lambda output, status, body, headers: None,
                              method_not_allowed=lambda output, allowed: None,
                              register=lambda pattern, callback: callbacks.__setitem__(pattern, callback))
    metrics = Metrics(lambda: True)
    router = web.Router(transport, observe=metrics.request)
    services = Services(rest_get_json=None, rest_post=lambda uri, body: STORED, rest_delete=lambda uri: None,
                        default_encoding=lambda: "Latin1")
    router.add("/tools/create-dicom", {"POST": CreateDicom(config, Dictionary(), services,
                                                           observe=metrics.create_dicom)})
    return callbacks["/tools/create-dicom"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="png-64-rgb", help="a case of benchmarks/create_dicom.py")
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top 25 functions by own time")
    args = parser.parse_args()
    body = next(body for name, _, body, _ in create_dicom.make_cases(3) if name == args.case)
    callback = route(settings.Settings())
    request = {"method": "POST", "groups": (), "headers": {"content-type": "application/json"}, "body": body}
    for _ in range(200):  # warm-up
        callback(None, "/tools/create-dicom", **request)
    times = []
    profiler = cProfile.Profile() if args.profile else None
    for _ in range(args.repeat):
        began = time.perf_counter()
        if profiler:
            profiler.enable()
        callback(None, "/tools/create-dicom", **request)
        if profiler:
            profiler.disable()
        times.append(time.perf_counter() - began)
    print("%s (%d bytes): median %.1f us per request, n=%d, Python %s" % (
        args.case, len(body), statistics.median(times) * 1e6, args.repeat, sys.version.split()[0]))
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
