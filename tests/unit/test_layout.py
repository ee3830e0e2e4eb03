"""The layout keeps its walls: dicomize/ stays pure, and only host.py imports `orthanc`."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "plugin" / "advanced_rest"
# What dicomize/ (body -> DICOM bytes) must never reach: HTTP, jobs, Orthanc, metrics, the feature using it.
NOT_IN_DICOMIZE = {"web", "jobs", "host", "metrics", "create_dicom"}


def _modules(folder):
    return sorted(folder.rglob("*.py"))


def _imports(path):
    """The absolute names a module imports (relative imports resolved within advanced_rest)."""
    package = ["advanced_rest"] + list(path.relative_to(PACKAGE).parent.parts)
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update("%s.%s" % (module, alias.name) for alias in node.names)
    return names


def test_every_module_is_seen():
    assert len(_modules(PACKAGE / "dicomize")) >= 10 and (PACKAGE / "host.py").exists()


@pytest.mark.parametrize("path", _modules(PACKAGE / "dicomize"), ids=lambda path: path.name)
def test_dicomize_is_pure(path):
    reached = {name.split(".")[1] for name in _imports(path) if name.startswith("advanced_rest.")}
    assert not reached & NOT_IN_DICOMIZE, "%s imports %s" % (path.name, sorted(reached & NOT_IN_DICOMIZE))


def test_only_host_imports_orthanc():
    importers = {path.relative_to(PACKAGE).as_posix() for path in _modules(PACKAGE)
                 if any(name == "orthanc" or name.startswith("orthanc.") for name in _imports(path))}
    assert importers == {"host.py"}
