"""Pieces of the jobs routes that need no Orthanc."""
import json

from advanced_rest.jobs.routes import _splice


def test_core_and_plugin_jobs_are_spliced_into_one_array():
    assert json.loads(_splice(b"[ ]\n", [{"ID": "p"}])) == [{"ID": "p"}]
    assert json.loads(_splice(b'[\n   {"ID" : "c"}\n]\n', [{"ID": "p"}])) == [{"ID": "c"}, {"ID": "p"}]
    assert _splice(b'[{"ID": "c"}]', []) == b'[{"ID": "c"}]'
