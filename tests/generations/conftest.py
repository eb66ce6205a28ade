"""Fixtures of the mixed-generation fleet (what it is, and the helpers: genlib.py).

- ``gen`` (session) runs ``scripts/generations.sh status``; when a host is not up, EVERY test
  fails and says to run ``scripts/generations.sh up`` (this suite never skips, and it does not
  start a cold build behind your back).
- ``versions`` (session): ``scripts/generations.sh versions --json`` by host name.
"""

from __future__ import annotations

import json
import os

import pytest

from genlib import GEN_SH, SETUP, Generations, run

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_configure(config):
    config.addinivalue_line("markers", "generations: needs the mixed-generation fleet (scripts/generations.sh up)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.generations)


@pytest.fixture(scope="session")
def gen():
    res = run(["bash", GEN_SH, "status"], 120)
    if not res.ok:
        pytest.fail("the generation fleet is not up. Run:\n    %s\nscripts/generations.sh status said:\n%s"
                    % (SETUP, res.stderr), pytrace=False)
    fleet = Generations()
    yield fleet
    fleet.close()


@pytest.fixture(scope="session")
def versions(gen):
    """``scripts/generations.sh versions --json``, by host name."""
    res = gen.sh("versions", "--json", timeout=120)
    assert res.ok, str(res)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    return {row["name"]: row for row in rows}
