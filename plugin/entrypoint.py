"""Orthanc's `PythonScript` points here: put the package on sys.path and register it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import advanced_rest

    advanced_rest.register()
except Exception as exc:  # a missing dependency must not stop Orthanc from starting
    message = ("advanced-rest: NOT LOADED: %s: %s (install plugin/requirements.txt into the Python that "
               "Orthanc embeds, see README)" % (type(exc).__name__, exc))
    try:
        from advanced_rest import host  # imports nothing but orthanc and the standard library

        host.log_error(message)
    except Exception:  # not even Orthanc's log: stderr, one line
        sys.stderr.write(message + "\n")
