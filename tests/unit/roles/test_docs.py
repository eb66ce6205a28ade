"""The module documentation renders with ansible-doc and matches the argument spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ansible_collections.virtfleet.libvirt.plugins.modules import virt_disk_io_policy

ANSIBLE_DOC = os.path.join(os.path.dirname(sys.executable), "ansible-doc")


def test_ansible_doc_renders_module_and_matches_argspec():
    proc = subprocess.run([ANSIBLE_DOC, "--json", "virtfleet.libvirt.virt_disk_io_policy"],
                          capture_output=True, text=True, check=False, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["virtfleet.libvirt.virt_disk_io_policy"]
    options = doc["doc"]["options"]
    spec = virt_disk_io_policy.argument_spec()
    assert set(options) == set(spec)
    for name, opt in spec.items():
        assert options[name].get("default") == opt.get("default"), name
        assert options[name].get("choices") == opt.get("choices"), name
    assert {"findings", "domains", "summary", "changed"} <= set(doc["return"])
    text = subprocess.run([ANSIBLE_DOC, "virtfleet.libvirt.virt_disk_io_policy"], capture_output=True,
                          text=True, check=False, env=dict(os.environ))
    assert text.returncode == 0 and "io-native-not-applicable" in text.stdout
