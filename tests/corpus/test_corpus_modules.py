"""The collection's modules on libvirt's own test-suite XML, judged independently (see conftest.py).

One test per (corpus file, module) collects every problem of that domain: module failures, (a) changes
that were not reported or reported changes that are missing, (b) check mode and the real run
disagreeing, (c) a second run that changes something. Secrets, (d), are ``test_secrets``.
"""

from __future__ import annotations

import pytest

import _corpuslib as cl
import _lablib
from conftest import part_for, record_failure

ACTIONABLE_CHECK = ("drift",)
ACTIONABLE_REAL = ("fixed", "failed")

# Secret classes whose leak is known and being fixed (the redaction is being rewritten): a leak of
# one of these is an expected failure with this reason; any other leak fails.
KNOWN_LEAKS = {
    # e.g. "cookie": "redaction rewrite pending: <cookies><cookie> values of network disks are shown",
    # (at 230f0ce, before dfa21f2 "_redact: complete secret redaction", cookies leaked in --diff)
}


def _domain(corpus_run, corpus_file):
    dom = corpus_run.domains[corpus_file]
    if dom.skipped:
        pytest.skip(dom.skipped)
    if dom.refused:
        pytest.skip("libvirt refuses it here: %s" % dom.refused.replace("\n", " ")[:300])
    return dom


def _module_problems(call, name, kind):
    """(class, message) of module failures in one call, for one domain."""
    out = []
    if call.global_failure:
        out.append(("module failed as a whole (%s): %s" % (kind, _lablib.refusal_class(call.describe())[:120]),
                    call.describe()))
        return out
    part = part_for(call, name)
    entry = part["domain"]
    if entry is None:
        out.append(("domain missing from the module result", "%s: %s not in domains[]" % (kind, name)))
    elif entry.get("error"):
        out.append(("domain error (%s): %s" % (kind, _lablib.refusal_class(entry["error"])[:140]), entry["error"]))
    for f in part["findings"]:
        if f.get("status") == "failed":
            out.append(("finding failed (%s): %s" % (kind, f.get("rule")), f.get("message", "")))
    return out


def _pairs(findings, statuses):
    return {(f["device"]["path"], f["rule"]) for f in findings if f.get("status") in statuses}


def judge(dom, module, step):
    """Every problem of one domain after one module: [(class, message)]."""
    problems = []
    for kind in ("check", "real", "again"):
        problems += _module_problems(step.calls[kind], dom.name, kind)
    real = part_for(step.calls["real"], dom.name)["findings"]
    check = part_for(step.calls["check"], dom.name)["findings"]
    again = step.calls["again"]
    # (a) only the reported change reached the domain, and all of it did
    if step.twin_error:
        problems.append(("judge could not apply the reported changes", step.twin_error))
    elif step.twin is not None:
        deltas = cl.diff(step.twin, step.after)
        if deltas:
            problems.append(("(a) definition differs from the reported change: %s"
                             % ", ".join(sorted({d.klass for d in deltas}))[:200],
                             "; ".join("%s %s" % (d.klass, d.detail) for d in deltas[:8])))
    for msg in cl.reported_present(step.after, real):
        problems.append(("(a) reported change missing from the definition", msg))
    # (b) check mode reports exactly what the real run fixes
    drift, fixed = _pairs(check, ACTIONABLE_CHECK), _pairs(real, ACTIONABLE_REAL)
    if drift != fixed:
        problems.append(("(b) check mode and real run disagree",
                         "only in check: %s; only in real run: %s" % (sorted(drift - fixed), sorted(fixed - drift))))
    # (c) the second run changes nothing
    if not again.global_failure:
        part = part_for(again, dom.name)
        if part["domain"] is not None and part["domain"].get("changed"):
            problems.append(("(c) second run changed the domain again",
                             "; ".join(f["message"] for f in part["findings"] if f.get("status") == "fixed")[:500]))
        redo = [f for f in part["findings"] if f.get("status") in ("fixed", "drift")]
        if redo and not (part["domain"] or {}).get("changed"):
            problems.append(("(c) second run still reports actionable findings",
                             "; ".join(f["message"] for f in redo)[:500]))
    deltas = cl.diff(step.after, step.after_again)
    if deltas:
        problems.append(("(c) definition changed by the second run: %s" % ", ".join(sorted({d.klass for d in deltas}))[:200],
                         "; ".join("%s %s" % (d.klass, d.detail) for d in deltas[:8])))
    return problems


def test_module(corpus_run, corpus_file, module_name):
    dom = _domain(corpus_run, corpus_file)
    step = dom.steps[module_name]
    problems = judge(dom, module_name, step)
    for klass, message in problems:
        record_failure(klass, corpus_file, module_name, message)
    assert not problems, "%s (%s) through %s:\n%s" % (
        corpus_file, dom.name, module_name, "\n".join("- %s\n    %s" % p for p in problems))


def test_secrets(corpus_run, secret_file, module_name):
    """(d) secret values of the definition never appear in the module's JSON output or --diff."""
    dom = _domain(corpus_run, secret_file)
    step = dom.steps[module_name]
    secrets = {(s.klass, s.value): s for s in cl.secrets_of(step.before) + cl.secrets_of(dom.prepared)}
    refs = {(s.klass, s.value): s for s in cl.secret_refs(step.before)}
    leaks = []
    for kind, call in step.calls.items():
        if call.result is None:
            continue
        for (klass, value), secret in sorted(secrets.items()):
            where = cl.found_in(value, call.result)
            if where:
                leaks.append((klass, "%s of the %s run (%s)" % (where, kind, secret.where)))
        for (klass, value), ref in sorted(refs.items()):
            where = cl.found_in(value, call.result)
            if where:
                corpus_run.refs_shown.append((secret_file, module_name, klass, "%s of the %s run" % (where, kind)))
    for klass, where in leaks:
        corpus_run.leaks.append((secret_file, module_name, klass, where))
    unknown = [(k, w) for k, w in leaks if k not in KNOWN_LEAKS]
    assert not unknown, "secret values of %s leak through %s: %s" % (
        secret_file, module_name, "; ".join("%s in %s" % lw for lw in unknown))
    if leaks:
        pytest.xfail("; ".join(sorted({KNOWN_LEAKS[k] for k, _w in leaks})))
