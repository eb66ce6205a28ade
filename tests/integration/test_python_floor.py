"""The Python the modules run with on a managed host: every module and module_utils file imports
with the target host's own /usr/bin/python3 (on ``VIRTFLEET_TARGET=bullseye`` that is Python 3.9,
the oldest the README supports), and no file relies on syntax newer than that floor without
``from __future__ import annotations``.

Controller-side plugins (action, filter, plugin_utils, doc_fragments) run with the controller's
Python only (ansible-core 2.19: 3.11+), so only the future-import check covers them.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import textwrap

from _itlib import ROOT, TARGET, module_env
from _target import GENERATIONS, OLDEST_PYTHON, TARGETS

PLUGINS = os.path.join(ROOT, "plugins")
HOST_SIDE = ("modules", "module_utils")      # what AnsiballZ ships to a managed host


def plugin_files(dirs=None):
    out = []
    for base, _subdirs, files in os.walk(PLUGINS):
        rel = os.path.relpath(base, PLUGINS).split(os.sep)[0]
        if dirs is not None and rel not in dirs:
            continue
        out += [os.path.join(base, f) for f in files if f.endswith(".py")]
    return sorted(out)


def needs_future_annotations(source):
    """Line numbers of annotations a Python 3.9 interpreter cannot evaluate: PEP 604 unions
    (``str | None``, 3.10+). With ``from __future__ import annotations`` annotations are never
    evaluated, so they are harmless; without it a dataclass field or a signature breaks at import."""
    tree = ast.parse(source)
    lines = []

    def check(node):
        if node is None:
            return
        if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(node)):
            lines.append(node.lineno)

    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            check(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            check(node.returns)
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None:
                    check(arg.annotation)
    return sorted(set(lines))


def has_future_annotations(source):
    tree = ast.parse(source)
    return any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
               for n in tree.body)


def missing_future(path):
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    return [] if has_future_annotations(source) else needs_future_annotations(source)


def test_the_checker_finds_what_breaks_on_the_floor():
    bad = textwrap.dedent("""\
        from dataclasses import dataclass
        @dataclass
        class Plan:
            live_xml: str | None = None
        def f(x: int | None) -> list[str] | None:
            return None
        """)
    assert needs_future_annotations(bad) == [4, 5]
    assert not has_future_annotations(bad)
    assert has_future_annotations("from __future__ import annotations\n" + bad)
    assert needs_future_annotations("def f(x: 'int | None', y: list[int]) -> None: pass\n") == []


def test_every_plugin_that_needs_the_future_import_has_it():
    offenders = {os.path.relpath(p, ROOT): lines for p in plugin_files() if (lines := missing_future(p))}
    assert not offenders, ("PEP 604 annotations without `from __future__ import annotations` break on Python "
                           "%d.%d (lines): %s" % (*OLDEST_PYTHON, offenders))


def test_readme_states_the_measured_python_range():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    match = re.search(r"Python (\d+)\.(\d+) - (\d+)\.(\d+)", readme)
    assert match, "README.md states no 'Python X.Y - X.Y' range for the hypervisors"
    low, high = (int(match[1]), int(match[2])), (int(match[3]), int(match[4]))
    assert low == OLDEST_PYTHON and high == max(TARGETS[g]["python"] for g in GENERATIONS), match[0]


IMPORT_ALL = r"""
import json, sys, importlib, traceback
root, names, files = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
out = {"version": "%d.%d.%d" % sys.version_info[:3], "executable": sys.executable, "errors": {}}
for path in files:
    try:
        with open(path, encoding="utf-8") as handle:
            compile(handle.read(), path, "exec")
    except Exception as exc:
        out["errors"][path] = "compile: %s" % exc
for name in names:
    try:
        importlib.import_module(name)
    except Exception:
        out["errors"][name] = traceback.format_exc(limit=3)
print(json.dumps(out))
"""


def test_modules_import_with_the_hosts_python(lab, tmp_path):
    """Compile every plugin file and import every module and module_utils file with the Python
    that runs the modules on this target (bullseye: 3.9, the floor)."""
    if TARGET.is_gen:
        base = os.path.join(TARGET.pylib, "ansible_collections", "virtfleet", "libvirt", "plugins")
    else:
        base = PLUGINS
    host_files = plugin_files(HOST_SIDE)
    names = ["ansible_collections.virtfleet.libvirt.plugins.%s" % os.path.relpath(p, PLUGINS)[:-3].replace(os.sep, ".")
             for p in host_files]
    files = [os.path.join(base, os.path.relpath(p, PLUGINS)) for p in host_files]
    script = tmp_path / "import_all.py"
    script.write_text(IMPORT_ALL)
    argv = TARGET.python_argv([str(script), base, json.dumps(names), json.dumps(files)], cwd=str(tmp_path))
    proc = subprocess.run(argv, capture_output=True, text=True, env=TARGET.module_env(module_env()), timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    want = TARGET.expected["python"]
    assert tuple(int(x) for x in got["version"].split(".")[:2]) == want, got
    if TARGET.is_gen:
        assert got["executable"] == "/usr/bin/python3", got
    assert len(names) > 20, names
    assert got["errors"] == {}, json.dumps(got["errors"], indent=1)
