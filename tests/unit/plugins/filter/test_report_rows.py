"""The HTML report's finding rows (_report_html.finding_rows) are exactly what the template loop they
replaced rendered (kept below as the reference), for every kind of cell: alias, source and serial
present or not, a wanted value or none, a pending restart, no message, and text that must be escaped.
"""

from __future__ import annotations

import itertools

from jinja2 import Environment, StrictUndefined

from ansible_collections.virtfleet.libvirt.plugins.plugin_utils import _report_html

# The loop of roles/report/templates/_macros.html.j2 before finding_rows(), verbatim (one long line split by
# a backslash, which the string does not contain).
REFERENCE = """<tbody>
{%- for f in d['findings'] %}
{%- set v = view(hn, d, f) %}
<tr class="item finding" data-host="{{ hn }}" data-status="{{ f['status'] }}" data-rule="{{ f['rule'] }}" data-check="{{ f['check'] }}">
<td>{{ f['check'] }}</td><td><code>{{ f['rule'] }}</code></td>
<td class="dev"><b>{{ v[0] }}</b>
{%- if v[3] %}<small>alias {{ v[3] }}</small>{% endif %}
{%- if v[4] %}<small class="mono">{{ v[4] }}</small>{% endif %}
{%- if v[5] %}<small>serial {{ v[5] }}</small>{% endif %}</td>
<td class="chg mono">{{ v[1] }}{% if v[2] %}<span class="arrow">→</span>{{ v[2] }}{% endif %}</td>
<td><span class="badge st-{{ f['status'] }}">{{ f['status'] }}</span>\
{% if f['pending_restart'] %}<br><span class="restart">↻ restart pending</span>{% endif %}</td>
<td class="msg">{{ f['message'] or '' }}</td></tr>
{%- endfor %}
</tbody>"""

NEW = """<tbody>
{{- finding_rows(hn, d) }}
</tbody>"""

HOSTILE = '<b>"x" & \'y\'</b>'


def render(text, hn, d):
    env = Environment(autoescape=True, undefined=StrictUndefined)
    env.globals.update(view=_report_html.finding_view, finding_rows=_report_html.finding_rows)
    return env.from_string(text).render(hn=hn, d=d)


def findings():
    out = []
    devices = [
        {"kind": "disk", "target": "vda", "bus": "virtio", "source": "/img/a b&c.qcow2", "path": "/domain/devices/disk[1]"},
        {"kind": "interface", "mac": "52:54:00:00:00:01", "alias": "ua-net0", "path": "/domain/devices/interface"},
        {"kind": "disk", "target": "sdb", "serial": HOSTILE, "alias": "ua-" + HOSTILE, "source": HOSTILE},
        {"kind": "rng"},
    ]
    disk_now = {"cache": "writeback", "io": "threads", "cache_set": False, "io_set": True}
    disk_wanted = {"cache": "none", "io": "native", "cache_set": True, "io_set": True}
    changes = [({"alias": None}, {"alias": "ua-x"}), (disk_now, disk_wanted), ({"alias": HOSTILE}, {}), ({}, {})]
    for i, (device, (cur, des), status, restart, message) in enumerate(itertools.product(
            devices, changes, ["drift", "fixed", "skipped"], [False, True], [None, "", "plain", HOSTILE])):
        out.append({"check": "aliases" if i % 2 else "disk_io", "rule": "rule-%d" % (i % 3) if i % 5 else HOSTILE,
                    "status": status, "pending_restart": restart, "device": device, "current": cur,
                    "desired": des, "message": message})
    return out


def test_rows_equal_the_template_loop():
    d = {"name": "db-01", "uuid": "u", "findings": findings()}
    for hn in ("hv-ams-01", HOSTILE):
        reference = render(REFERENCE, hn, d)
        assert render(NEW, hn, d) == reference
        assert reference.count("<tr ") == len(d["findings"]) > 300
        assert HOSTILE not in reference   # everything was escaped


def test_no_findings_no_rows():
    assert render(NEW, "h", {"findings": []}) == render(REFERENCE, "h", {"findings": []}) == "<tbody>\n</tbody>"
