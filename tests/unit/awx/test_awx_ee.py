"""execution-environment.yml and the collection's meta/execution-environment.yml: the EE the AWX templates run in.

No container runtime here, so `ansible-builder create` (the build context and Containerfile) and
builder's own introspection of the built collection stand in for `ansible-builder build`.
"""

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
EE_FILES = ("execution-environment.yml",)


def _ee():
    return yaml.safe_load((ROOT / "execution-environment.yml").read_text())


def _version():
    return yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]


def _pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = (line.split("==", 1) + [""])[:2]
            pins[name.strip().lower()] = version.strip()
    return pins


def _tool(name):
    """A console script of the Python running the tests (the venv's), else one on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def test_definition_is_valid_v3():
    ee_schema = pytest.importorskip("ansible_builder.ee_schema")
    ee = _ee()
    assert ee["version"] == 3
    ee_schema.validate_schema(ee)


def test_pins_match_the_controller():
    """The EE runs the same ansible-core, runner and module dependencies as the tests here."""
    runtime = _pins(ROOT / "requirements.txt")
    controller = dict(_pins(ROOT / "requirements-dev.txt"), **runtime)
    assert set(runtime) == {"libvirt-python", "lxml"}
    # The collection declares its own dependencies (ansible-builder introspects every collection of an
    # EE): the runtime requirements.txt and bindep.txt, never the developer toolchain.
    meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())
    assert meta == {"version": 1, "dependencies": {"python": "requirements.txt", "system": "bindep.txt"}}
    deps = _ee()["dependencies"]
    assert "python" not in deps and "system" not in deps  # stated once, by the collection
    assert deps["ansible_core"]["package_pip"] == f"ansible-core=={controller['ansible-core']}"
    runner = deps["ansible_runner"]["package_pip"]
    if "ansible-runner" in controller:
        assert runner == f"ansible-runner=={controller['ansible-runner']}"


def test_the_ee_definition_holds_no_version():
    """galaxy.yml alone holds the version: scripts/build-ee.sh names the tarball and tags the image."""
    ee = _ee()
    (collection,) = ee["dependencies"]["galaxy"]["collections"]
    assert collection == {"name": "/build/collections/virtfleet-libvirt.tar.gz", "type": "file"}
    assert {"src": "virtfleet-libvirt.tar.gz", "dest": "collections"} in ee["additional_build_files"]
    assert "tags" not in ee.get("options", {})
    assert _version() not in (ROOT / "execution-environment.yml").read_text()


def test_bindep_compiles_on_the_base_image_and_ships_only_runtime_libs():
    depends = pytest.importorskip("bindep.depends")
    ee = _ee()
    assert ee["images"]["base_image"]["name"].startswith("quay.io/centos/centos:stream9")
    python_pkg = ee["dependencies"]["python_interpreter"]["package_system"]
    rules = depends.Depends((ROOT / "bindep.txt").read_text())
    stream9 = ["platform:centos", "platform:centos-9", "platform:redhat", "platform:rpm"]

    def packages(profiles):
        return {rule[0] for rule in rules.active_rules(profiles)}

    runtime = packages(stream9 + ["default"])
    compile_ = packages(stream9 + ["compile"])
    assert runtime == {"libvirt-libs"}
    assert {"libvirt-devel", "gcc", "pkgconf-pkg-config", f"{python_pkg}-devel", "libvirt-libs"} <= compile_
    # The same file serves `bindep` on a Debian controller (make venv's libvirt-dev pkg-config).
    debian = ["platform:debian", "platform:debian-12", "platform:dpkg"]
    assert {"libvirt-dev", "pkg-config", "gcc"} <= packages(debian + ["compile"])


@pytest.fixture(scope="module")
def build_context(tmp_path_factory):
    """`ansible-galaxy collection build` + `ansible-builder create`, as docs/awx.md says, in a copy."""
    pytest.importorskip("ansible_builder")
    galaxy = _tool("ansible-galaxy")
    if not galaxy:
        pytest.skip("ansible-galaxy not found")
    work = tmp_path_factory.mktemp("ee")
    for name in EE_FILES:
        shutil.copy(ROOT / name, work / name)
    subprocess.run([galaxy, "collection", "build", "--force", "--output-path", str(work), str(ROOT)],
                   check=True, capture_output=True, text=True)
    # What scripts/build-ee.sh does: the tarball under the name execution-environment.yml expects.
    shutil.copy(work / f"virtfleet-libvirt-{_version()}.tar.gz", work / "virtfleet-libvirt.tar.gz")
    done = subprocess.run(
        [sys.executable, "-m", "ansible_builder", "create", "-f", str(work / "execution-environment.yml"),
         "-c", str(work / "context"), "--output-filename", "Containerfile"],
        capture_output=True, text=True, cwd=work, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return work


def test_create_writes_a_containerfile_that_builds_libvirt_python(build_context):
    context = build_context / "context"
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    assert "ansible-core==2.19.14" in containerfile
    # Builder stage: CRB (libvirt-devel) before bindep's compile profile and the wheel build.
    builder = containerfile.split("# Builder build stage", 1)[1].split("# Final build stage", 1)[0]
    assert builder.index("config-manager --set-enabled crb") < builder.index("/output/scripts/assemble")
    final = containerfile.split("# Final build stage", 1)[1]
    assert "import libvirt, lxml.etree" in final
    assert "ansible-doc virtfleet.libvirt." in final
    assert "virtfleet.libvirt (libvirt-python, lxml)" in final
    build = context / "_build"
    assert yaml.safe_load((build / "requirements.yml").read_text()) == _ee()["dependencies"]["galaxy"]
    assert (build / "collections" / "virtfleet-libvirt.tar.gz").is_file()


def test_collection_tarball_has_the_playbooks_and_no_dev_requirements(build_context):
    with tarfile.open(build_context / f"virtfleet-libvirt-{_version()}.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"playbooks/audit.yml", "playbooks/remediate.yml", "playbooks/detach.yml",
            "playbooks/rolling_upgrade.yml", "bindep.txt", "requirements.txt",
            "meta/execution-environment.yml"} <= names
    # Builder reads the collection's requirements.txt as its Python deps: the runtime pins only; the
    # dev pins (pytest, hypothesis, ...) must never reach the EE (galaxy.yml build_ignore keeps them out).
    assert "requirements-dev.txt" not in names
    assert "collections/requirements.yml" not in names
    assert not any(n.startswith((".venv/", ".build/", "reports/")) for n in names)


def test_builder_introspection_of_the_collection(build_context, tmp_path):
    """What the builder stage installs: builder's own introspect.py over the installed collection."""
    galaxy = _tool("ansible-galaxy")
    tarball = build_context / f"virtfleet-libvirt-{_version()}.tar.gz"
    # --force: ANSIBLE_COLLECTIONS_PATH (tests/conftest.py) already holds the repo as the collection,
    # and ansible-galaxy would call the tarball installed and copy nothing.
    subprocess.run([galaxy, "collection", "install", "--force", "-p", str(tmp_path / "collections"), str(tarball)],
                   check=True, capture_output=True, text=True)
    assert (tmp_path / "collections" / "ansible_collections" / "virtfleet" / "libvirt" / "bindep.txt").is_file()
    build = build_context / "context" / "_build"
    pip_out, bindep_out = tmp_path / "pip.txt", tmp_path / "bindep.txt"
    subprocess.run(
        [sys.executable, str(build / "scripts" / "introspect.py"), "introspect", str(tmp_path / "collections"),
         f"--write-pip={pip_out}", f"--write-bindep={bindep_out}"],
        check=True, capture_output=True, text=True)
    pip = {line.split("==")[0] for line in pip_out.read_text().splitlines() if line.strip()}
    assert pip == {"libvirt-python", "lxml"}
    system = bindep_out.read_text()
    assert "from collection virtfleet.libvirt" in system  # the collection declares its own bindep.txt
    assert "libvirt-devel [compile platform:rpm]" in system
