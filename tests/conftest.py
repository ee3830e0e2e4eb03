"""Shared test set-up: the plugin package on sys.path, and the --legs option."""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Unit tests import the pure modules (`advanced_rest.dicomize`...), which never import `orthanc`.
sys.path.insert(0, os.path.join(REPO, "plugin"))
# Helpers both kinds of tests share (forged_images.py).
sys.path.insert(0, os.path.join(REPO, "tests"))


def pytest_addoption(parser):
    # Here rather than in tests/integration/conftest.py: options must be known before collection.
    parser.addoption(
        "--legs",
        default=None,
        help="comma-separated legs for integration tests (bookworm,trixie,forky,docker); "
        "default: $ADVANCED_REST_LEGS, else all",
    )
