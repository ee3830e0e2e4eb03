"""The layout keeps the walls of DESIGN.md, on the import graph and transitively:

    dicomize/   pure: reaches neither web, jobs/, host, metrics/ nor create_dicom/ (nor `orthanc`)
    host.py     the one module that imports `orthanc`
    jobs/       knows nothing of create_dicom/ (the feature that uses it)
    features    (dicomize/, create_dicom/, jobs/, metrics/, webhooks/) get values and callables, never `host`

The graph is built with `ast` from every module of the package: `import advanced_rest.x`,
`from . import x`, `from .. import app`, `from ..jobs.model import Job`, imports inside functions
too (they run when called). A module reaches what it imports, what those import, and so on.
Importing a submodule also runs its packages' `__init__` (jobs/__init__.py for jobs.workers); the
top package's is left out of that, since its only import is `app`, inside `register()`, which
entrypoint.py alone calls. Proof that the guard sees: the last tests inject forbidden imports into
a copy of the package and check that they are named.
"""
import ast
import pathlib
import shutil

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "plugin" / "advanced_rest"
TOP = "advanced_rest"

FEATURES = ("dicomize", "create_dicom", "jobs", "metrics", "webhooks")
# (who, what it must never reach, the wall): a name ending in "." is a whole package.
WALLS = [
    ("dicomize.", ("web", "jobs.", "host", "metrics.", "create_dicom.", "orthanc"),
     "dicomize/ is pure (DESIGN.md: imports neither web, jobs, host nor metrics)"),
    ("jobs.", ("create_dicom.",), "jobs/ knows nothing of create_dicom/"),
] + [(feature + ".", ("host",), "features get values and callables, not host (STYLE.md)") for feature in FEATURES]


def _matches(module, pattern):
    """Whether module (dotted, without the top package) is pattern: a module, or a package ending in '.'."""
    if pattern.endswith("."):
        return module == pattern[:-1] or module.startswith(pattern)
    return module == pattern


def module_files(package_dir):
    """{dotted module name: (path, is_package)} of every module under package_dir (named TOP)."""
    found = {}
    for path in sorted(pathlib.Path(package_dir).rglob("*.py")):
        parts = [TOP] + list(path.relative_to(package_dir).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_graph(package_dir):
    """Return ({module: set of what it imports}, [problems]); internal names are dotted modules
    (advanced_rest.jobs.workers), external ones as written (orthanc, numpy.linalg)."""
    modules = module_files(package_dir)
    graph, problems = {}, []

    def internal(target, where):
        """The modules that importing `target` runs: it and its packages' __init__ (not the top's)."""
        if target not in modules:
            problems.append(f"{where}: imports {target}, which is no module of the package")
            return set()
        parts = target.split(".")
        return {".".join(parts[:n]) for n in range(2, len(parts) + 1)}

    for name, (path, is_package) in modules.items():
        package = name.split(".") if is_package else name.split(".")[:-1]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == TOP or alias.name.startswith(TOP + "."):
                        edges |= internal(alias.name, name)
                    else:
                        edges.add(alias.name)
                continue
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                if node.level > len(package):
                    problems.append(f"{name}: relative import beyond the top package")
                    continue
                base = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module == TOP or node.module.startswith(TOP + "."):
                base = node.module.split(".")
            else:
                edges.add(node.module)
                continue
            module = ".".join(base)
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                # `from . import x` imports the submodule x; `from .x import f` takes a name from x.
                edges |= internal(submodule if submodule in modules else module, name)
        edges.discard(name)
        graph[name] = edges
    return graph, problems


def reach(graph, start):
    """{module reached from start: the import path to it, as a list of modules}."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        current = todo.pop()
        for target in sorted(graph.get(current, ())):
            if target not in paths:
                paths[target] = paths[current] + [target]
                todo.append(target)
    return paths


def _short(module):
    return module[len(TOP) + 1:] if module.startswith(TOP + ".") else module


def violations(package_dir):
    """Every breach of WALLS and of 'only host.py imports orthanc', each with its import path."""
    graph, problems = import_graph(package_dir)
    found = list(problems)
    for module in sorted(graph):
        if module == TOP:
            continue
        for source, forbidden, wall in WALLS:
            if not _matches(_short(module), source):
                continue
            for target, path in sorted(reach(graph, module).items()):
                if any(_matches(_short(target), pattern) for pattern in forbidden):
                    found.append(f"{wall}: {' -> '.join(map(_short, path))}")
        direct_orthanc = any(name == "orthanc" or name.startswith("orthanc.") for name in graph[module])
        if direct_orthanc and module != f"{TOP}.host":
            found.append(f"only host.py imports orthanc: {_short(module)} does")
    return found


# -- the package as it is ------------------------------------------------------------------------

def test_the_graph_sees_every_module_and_the_imports_between_them():
    graph, problems = import_graph(PACKAGE)
    assert problems == []
    assert len([m for m in graph if m.startswith(TOP + ".dicomize.")]) >= 10
    assert "orthanc" in graph[TOP + ".host"]
    assert TOP + ".app" in graph[TOP]  # `from . import app` inside register()
    assert TOP + ".host" in graph[TOP + ".app"]  # `from . import __version__, host, ...`
    # Transitive: create-dicom's route reaches the pure builder through its own modules.
    assert any(m.startswith(TOP + ".dicomize.") for m in reach(graph, TOP + ".create_dicom.route"))
    assert TOP + ".host" in reach(graph, TOP + ".app")


def test_the_package_keeps_its_walls():
    assert violations(PACKAGE) == []


# -- proof that the guard sees a breach, direct or through other modules --------------------------

INJECTIONS = {
    "dicomize imports app": ("dicomize/values.py", "from .. import app\n",
                             "dicomize/ is pure (DESIGN.md: imports neither web, jobs, host nor metrics): "
                             "dicomize.values -> app -> host"),
    "dicomize reaches web through errors": ("errors.py", "from . import web\n",
                                            "dicomize.values -> errors -> web"),
    "jobs/cluster imports host": ("jobs/cluster/replica.py", "from ... import host\n",
                                  "features get values and callables, not host (STYLE.md): "
                                  "jobs.cluster.replica -> host"),
    "jobs imports create_dicom inside a function": (
        "jobs/workers.py", "def _late():\n    from ..create_dicom.job import CreateDicomJob\n",
        "jobs/ knows nothing of create_dicom/: jobs.workers -> create_dicom.job"),
    "jobs reaches create_dicom by an absolute import in its __init__": (
        "jobs/__init__.py", "import advanced_rest.create_dicom.storing\n",
        "jobs/ knows nothing of create_dicom/: jobs.workers -> jobs -> create_dicom.storing"),
    "metrics imports orthanc": ("metrics/push.py", "import orthanc\n", "only host.py imports orthanc: metrics.push does"),
}


@pytest.mark.parametrize("target, line, expected", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_the_guard_names_an_injected_forbidden_import(tmp_path, target, line, expected):
    copy = tmp_path / TOP
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(copy) == [], "the copy keeps the walls before the injection"
    path = copy / target
    path.write_text(path.read_text(encoding="utf-8") + "\n" + line, encoding="utf-8")
    found = violations(copy)
    assert any(expected in breach for breach in found), found


def test_an_import_the_graph_cannot_resolve_is_a_failure_not_a_blind_spot(tmp_path):
    copy = tmp_path / TOP
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / "dicomize" / "values.py"
    path.write_text(path.read_text(encoding="utf-8") + "\nfrom ..nowhere import thing\n", encoding="utf-8")
    assert "advanced_rest.dicomize.values: imports advanced_rest.nowhere, which is no module of the package" \
        in violations(copy)
