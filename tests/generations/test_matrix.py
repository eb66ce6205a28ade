"""Upgrade readiness measured against reality: the confusion matrix of matrix.py on the three generations.

Hand-made domains (matrix.HANDMADE, one or more per reason class) and a bounded deterministic sample
of each generation's own libvirt test corpus (matrix.CI_SAMPLE per source, by sha256 of the file
name) that define AND start on their own generation are checked against every other generation's
capability snapshot (virt_policy, upgrade_readiness) and then really defined (VALIDATE) and started
there (TCG, no OS), destroyed and undefined. Every prediction must match what happened: any miss
fails, listing domain, pair, prediction, libvirt's error and the XML file. ``make readiness-matrix``
runs every runnable corpus definition instead of the sample.
"""

from __future__ import annotations

import os

import pytest

from matrix import CI_SAMPLE, HOSTS, Matrix, format_matrix, misses_markdown


@pytest.fixture(scope="module", name="result")
def _result(gen):
    matrix = Matrix(gen, sample=int(os.environ.get("VIRTFLEET_MATRIX_SAMPLE", CI_SAMPLE)))
    result = matrix.run()
    print("\n" + format_matrix(result))
    return result


def test_every_pair_was_measured(result):
    assert sorted(result["pairs"]) == sorted("%s -> %s" % (s, t) for s in HOSTS for t in HOSTS if s != t)
    for host in HOSTS:
        assert result["admitted"][host] >= 10, result["admitted"]
    total = result["total"]
    assert sum(total.values()) == sum(result["admitted"][s] * (len(HOSTS) - 1) for s in HOSTS)


def test_the_matrix_holds_both_outcomes(result):
    """Not a trivial matrix. Upgrade paths (older -> newer) have domains that start and domains that
    do not (measured: pc-1.0 and an 11-character VNC password 11 -> 12; pc-i440fx-2.0 and SPICE
    12 -> 13); every pair has domains that do not start (downgrades: the alias-expanded machine types
    of the newer QEMU; to libvirt 7.0 nothing from 9.0 or 11.3 starts: both write <audio> into every
    definition, and 7.0's schema refuses it)."""
    order = list(HOSTS)
    for pair, cell in result["pairs"].items():
        source, target = pair.split(" -> ")
        assert cell["starts/failed"] + cell["wont/failed"] > 0, (pair, cell)
        if order.index(source) < order.index(target):
            assert cell["starts/started"] + cell["wont/started"] > 0, (pair, cell)


def test_every_prediction_matches_what_happened(result):
    assert result["misses"] == [], "%d prediction(s) did not match a real start:\n%s\n%s" % (
        len(result["misses"]), format_matrix(result), misses_markdown(result["misses"]))
