"""The upgrade-readiness prediction measured against reality on the three generations (issue 12 item 6).

For every SOURCE generation s and every other TARGET generation t:

1. the domains: hand-made ones (HANDMADE: one or more per reason class the rule knows and these
   hosts can show) and a sample of libvirt's own test-suite corpus of s
   (``tests/qemuxml2xmloutdata`` of s's Debian source package, ``VIRTFLEET_TARGET=s scripts/corpus.sh``), made
   runnable here (x86_64 only, TCG, the host's emulator, no UUID, memory capped);
2. ADMISSION on s: each is defined (VALIDATE) and started on s itself after its file paths were made
   to exist (matrix_agent.py); only what starts on its own generation goes on - the question is
   whether a start survives the move. Those stay defined on s; their inactive XML (with secrets) is
   kept as a file (.build/gen/matrix/<s>/<name>.xml);
3. PREDICTION: every host's capability snapshot (virt_capabilities, kept on the controller) and, on
   s, virt_policy's upgrade_readiness rule with t's snapshot as target, check mode;
4. REALITY on t: the XML file is defined on t with VALIDATE, started (TCG, paths made to exist),
   destroyed and undefined.

Every prediction must match what happened. The confusion matrix (predicted starts / won't start
against started / failed) per (s -> t) pair and in total is printed and written to
.build/gen/matrix/matrix.json with every miss (domain, pair, prediction, libvirt's error, XML file).

``python tests/generations/matrix.py [--full | --sample N]`` runs it outside pytest (``make
readiness-matrix`` runs --full); test_matrix.py runs the bounded CI sample.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import sys
import time

from lxml import etree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from genlib import EXPECTED, HOSTS, ROOT, Generations, run  # noqa: E402  pylint: disable=wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT = os.path.join(HERE, "matrix_agent.py")
OUT = os.path.join(ROOT, ".build", "gen", "matrix")
PREFIX = "vf-mx-"
LIBVIRT_VERSION = {"bullseye": "7.0.0", "bookworm": "9.0.0", "trixie": "11.3.0"}
CI_SAMPLE = 6          # corpus domains admitted per source generation in CI (deterministic)
BENCH_LOCK = "/tmp/vf-bench.lock"
CI_TRIES = 24          # corpus candidates tried per source generation in CI at most

IMG = "/var/lib/libvirt/images/vf-mx-matrix.img"
DISK = ("<disk type='file' device='disk'><driver name='qemu' type='raw'%s/><source file='%s'/>"
        "<target dev='vda' bus='virtio'/></disk>")
VNC = "<graphics type='vnc' autoport='yes' listen='127.0.0.1'%s/>"
SPICE = ("<graphics type='spice' autoport='yes' listen='127.0.0.1'/>"
         "<video><model type='qxl' ram='65536' vram='65536' vgamem='16384' heads='1'/></video>")

# case: (machine, devices, extra top-level XML). Each names the reason class it stands for; a case
# that a generation refuses to define or start is simply not admitted there.
HANDMADE = {
    "q35": ("q35", "", ""),                                     # alias: newest q35 of the source
    "pc": ("pc", "", ""),                                       # alias: newest i440fx of the source
    "pc10": ("pc-1.0", "", ""),                                 # machine type dropped by QEMU 7.2
    "i440fx20": ("pc-i440fx-2.0", "", ""),                      # dropped by QEMU 10.0
    "i440fx24": ("pc-i440fx-2.4", "", ""),                      # deprecated on 10.0, still starts
    "q35-52": ("pc-q35-5.2", "", ""),                           # old but offered everywhere
    "spice": ("q35", SPICE, ""),                                # device model: SPICE/qxl not on 13
    "vnclong": ("q35", VNC % " passwd='elevenchars'", ""),      # VNC password > 8: libvirt >= 8.0
    "vnc8": ("q35", VNC % " passwd='eightchr'", ""),
    "queue": ("q35", DISK % (" queue_size='256'", IMG), ""),    # XML newer than 7.0 (queue_size)
    "discard": ("q35", DISK % (" discard_no_unref='on'", IMG), ""),   # newer than 9.0
    "virtio-disk": ("q35", DISK % ("", IMG), ""),
    "ide-q35": ("q35", DISK.replace("bus='virtio'", "bus='sata'").replace("vda", "sda") % ("", IMG), ""),
    "ps2-off": ("q35", "", "<features><ps2 state='off'/></features>"),     # feature (libvirt 9.0+)
    "async": ("q35", "", "<features><async-teardown enabled='yes'/></features>"),
    "vmcore": ("q35", "", "<features><vmcoreinfo state='on'/></features>"),
    "cpu-host-model": ("q35", "", "<cpu mode='host-model'/>"),
    "cpu-sierra": ("q35", "", "<cpu mode='custom' match='exact'><model fallback='forbid'>SierraForest</model></cpu>"),
    "cpu-qemu64": ("q35", "", "<cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>"),
    "vcpus300": ("pc", "", ""),                                 # over pc's maxCpus (255)
    "rng": ("q35", "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>", ""),
    "bochs": ("q35", "<video><model type='bochs' vram='16384' heads='1'/></video>", ""),
    "virtio-gpu": ("q35", "<video><model type='virtio' heads='1'/></video>", ""),
    "passt": ("q35", "<interface type='user'><backend type='passt'/><model type='virtio'/></interface>", ""),
    "user-net": ("q35", "<interface type='user'><model type='virtio'/></interface>", ""),
    "sound-ich9": ("q35", "<sound model='ich9'/>", ""),
    "panic-pvpanic": ("q35", "<panic model='pvpanic'/>", ""),
    "tpm-crb": ("q35", "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>", ""),
    "usb-redir": ("q35", "<redirdev bus='usb' type='spicevmc'/>", ""),
}


def handmade_xml(source, case):
    machine, devices, extra = HANDMADE[case]
    vcpus = 300 if case == "vcpus300" else 1
    return ("<domain type='qemu'><name>%s%s-%s</name><memory unit='MiB'>64</memory><vcpu>%d</vcpu>"
            "<os><type arch='x86_64' machine='%s'>hvm</type></os>%s<devices>%s</devices></domain>"
            % (PREFIX, source, case, vcpus, machine, extra, devices))


# --- the corpus --------------------------------------------------------------------------------

UNRUNNABLE_INTERFACES = {"network", "bridge", "direct", "hostdev", "vhostuser", "vdpa", "server", "client",
                         "mcast", "udp", "ethernet", "null", "vds"}


def corpus_dir(source):
    """The source generation's own libvirt test corpus (scripts/corpus.sh with VIRTFLEET_TARGET: that
    generation's tests/qemuxml2xmloutdata, or for libvirt >= 10.x, which merged it, the xml2xml outputs
    of tests/qemuxmlconfdata), downloaded once into .build/corpus/<upstream version>/."""
    res = run(["env", "VIRTFLEET_TARGET=%s" % source, "bash", os.path.join(ROOT, "scripts", "corpus.sh")], 900)
    assert res.ok, str(res)
    path = os.path.join(ROOT, res.stdout.strip().splitlines()[-1])
    assert os.path.basename(path) == LIBVIRT_VERSION[source], (source, path)
    return path


def _runnable(root):
    """Whether a corpus definition can possibly start here (x86_64 TCG, no host resources)."""
    if root.tag != "domain" or root.get("type") not in ("qemu", "kvm"):
        return False
    ostype = root.find("os/type")
    if ostype is None or ostype.get("arch", "x86_64") != "x86_64" or ostype.text != "hvm":
        return False
    if root.find("devices/hostdev") is not None:
        return False
    for disk in root.iterfind("devices/disk"):
        if disk.get("type", "file") not in ("file",):
            return False
    for iface in root.iterfind("devices/interface"):
        if iface.get("type") in UNRUNNABLE_INTERFACES:
            return False
    return True


def corpus_domains(source, limit_tries=None):
    """[(name, xml, file)] of runnable corpus definitions of ``source``, in a deterministic order
    (sha256 of the file name), each made runnable here."""
    directory = corpus_dir(source)
    files = sorted((f for f in os.listdir(directory) if f.endswith(".xml")),
                   key=lambda f: hashlib.sha256(f.encode()).hexdigest())
    out = []
    for idx, fname in enumerate(files):
        try:
            root = etree.parse(os.path.join(directory, fname)).getroot()
        except etree.XMLSyntaxError:
            continue
        if not _runnable(root):
            continue
        root.set("type", "qemu")
        stem = re.sub(r"[^A-Za-z0-9_-]", "-", fname[:-4])[:48]
        name = "%s%s-c%03d-%s" % (PREFIX, source, idx, stem)
        root.find("name").text = name
        for uuid in root.findall("uuid"):
            root.remove(uuid)
        emu = root.find("devices/emulator")
        if emu is not None:
            emu.text = "/usr/bin/qemu-system-x86_64"
        if root.find("cpu/numa") is None and root.find("maxMemory") is None:
            for tag in ("memory", "currentMemory"):
                el = root.find(tag)
                if el is not None:
                    el.text, el.attrib["unit"] = str(min(_kib(el), 256 * 1024)), "KiB"
        out.append((name, etree.tostring(root, encoding="unicode"), os.path.join(directory, fname)))
        if limit_tries and len(out) >= limit_tries:
            break
    return out


def _kib(el):
    factor = {"b": 1 / 1024, "bytes": 1 / 1024, "KiB": 1, "k": 1, "KB": 1000 / 1024, "MiB": 1024, "M": 1024,
              "MB": 1000 ** 2 / 1024, "GiB": 1024 ** 2, "G": 1024 ** 2, "GB": 1000 ** 3 / 1024,
              "TiB": 1024 ** 3, "T": 1024 ** 3}.get(el.get("unit", "KiB"), 1)
    return int(int(el.text.strip()) * factor)


# --- running it --------------------------------------------------------------------------------

class Matrix:
    def __init__(self, gen, sample=CI_SAMPLE, tries=CI_TRIES, out=OUT, log=print):
        self.gen, self.sample, self.tries, self.out, self.log = gen, sample, tries, out, log
        self.times = {}

    def agent(self, host, request, timeout=1800):
        while os.path.exists(BENCH_LOCK):  # the lead is timing benchmarks: no guest starts meanwhile
            time.sleep(20)
        self.gen.ssh(host, "cat > /tmp/vf-mx-agent.py", input_text=open(AGENT, encoding="utf-8").read())
        res = self.gen.ssh(host, "python3 /tmp/vf-mx-agent.py", input_text=json.dumps(request), timeout=timeout)
        return json.loads(res.stdout)

    def cleanup(self):
        """Every matrix domain (vf-mx-<source>-*) on every host; other vf-mx-* domains stay."""
        for host in HOSTS:
            for source in HOSTS:
                self.agent(host, {"cleanup": "%s%s-" % (PREFIX, source)})

    def _admit_one(self, source):
        items = [{"name": "%s%s-%s" % (PREFIX, source, case), "xml": handmade_xml(source, case), "origin": "handmade:" + case}
                 for case in HANDMADE]
        admitted = [r for r in self.agent(source, {"domains": items, "keep": True})["results"] if r["started"]]
        origin = {i["name"]: i["origin"] for i in items}
        corpus = corpus_domains(source, limit_tries=self.tries)
        n_corpus, pos = 0, 0
        while pos < len(corpus) and (not self.sample or n_corpus < self.sample):
            size = 8 if not self.sample else min(8, self.sample - n_corpus)
            chunk, pos = corpus[pos:pos + size], pos + size
            res = self.agent(source, {"domains": [{"name": n, "xml": x} for n, x, _f in chunk], "keep": True})["results"]
            for (name, _xml, path), r in zip(chunk, res):
                origin[name] = "corpus:" + os.path.relpath(path, ROOT)
                if r["started"]:
                    admitted.append(r)
                    n_corpus += 1
        os.makedirs(os.path.join(self.out, source), exist_ok=True)
        for stale in os.listdir(os.path.join(self.out, source)):   # an earlier run's files
            os.unlink(os.path.join(self.out, source, stale))
        for r in admitted:
            r["file"] = os.path.join(self.out, source, r["name"] + ".xml")
            r["origin"] = origin[r["name"]]
            with open(r["file"], "w", encoding="utf-8") as fh:
                fh.write(r["xml"])
        return source, admitted

    def admit(self):
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(len(HOSTS)) as pool:
            self.admitted = dict(pool.map(self._admit_one, HOSTS))
        self.times["admission"] = time.monotonic() - t0
        for host in HOSTS:
            self.log("[matrix] %s: %d domains admitted (start on their own generation): %d hand-made, %d corpus"
                     % (host, len(self.admitted[host]),
                        sum(r["origin"].startswith("handmade") for r in self.admitted[host]),
                        sum(r["origin"].startswith("corpus") for r in self.admitted[host])))

    def predict(self):
        t0 = time.monotonic()
        snaps = os.path.join(self.out, "snapshots")
        os.makedirs(snaps, exist_ok=True)
        domains = {h: [r["name"] for r in self.admitted[h]] for h in HOSTS}
        play = os.path.join(self.out, "predict.yml")
        with open(play, "w", encoding="utf-8") as fh:
            fh.write(PREDICT_PLAY % {"snaps": snaps, "hosts": json.dumps(list(HOSTS))})
        res = self.gen.playbook(play, "-e", json.dumps({"matrix_domains": domains}), timeout=1800)
        assert res.ok, str(res)
        self.predicted = {}
        for source in HOSTS:
            with open(os.path.join(snaps, "predictions-%s.json" % source), encoding="utf-8") as fh:
                results = json.load(fh)
            for item in results:
                target = item["item"]
                for dom in item["domains"]:
                    self.predicted[(source, target, dom["name"])] = dom["readiness"]
        self.times["prediction"] = time.monotonic() - t0

    def _reality_one(self, target):
        items = [{"name": r["name"], "xml": r["xml"]} for s in HOSTS if s != target for r in self.admitted[s]]
        out = {}
        for pos in range(0, len(items), 16):   # in chunks: the benchmark lock is honoured between them
            out.update((r["name"], r) for r in self.agent(target, {"domains": items[pos:pos + 16], "keep": False})["results"])
        return target, out

    def reality(self):
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(len(HOSTS)) as pool:
            self.real = dict(pool.map(self._reality_one, HOSTS))
        self.times["reality"] = time.monotonic() - t0

    def tally(self):
        pairs, misses = {}, []
        for source in HOSTS:
            for target in HOSTS:
                if source == target:
                    continue
                cell = {"starts/started": 0, "starts/failed": 0, "wont/started": 0, "wont/failed": 0}
                for r in self.admitted[source]:
                    pred = self.predicted[(source, target, r["name"])]
                    real = self.real[target][r["name"]]
                    key = "%s/%s" % ("starts" if pred["starts"] else "wont", "started" if real["started"] else "failed")
                    cell[key] += 1
                    if pred["starts"] != real["started"]:
                        misses.append({"domain": r["name"], "origin": r["origin"], "pair": "%s -> %s" % (source, target),
                                       "predicted": "starts" if pred["starts"] else "won't start",
                                       "reasons": [x["code"] for x in pred.get("reasons", [])],
                                       "reason_messages": [x["message"] for x in pred.get("reasons", [])],
                                       "happened": "started" if real["started"] else "failed",
                                       "stage": real.get("stage"), "libvirt_error": real["error"], "code": real["code"],
                                       "xml_file": r["file"]})
                pairs["%s -> %s" % (source, target)] = cell
        total = {k: sum(c[k] for c in pairs.values()) for k in next(iter(pairs.values()))}
        self.result = {"pairs": pairs, "total": total, "misses": misses, "times_s": self.times,
                       "admitted": {h: len(self.admitted[h]) for h in HOSTS},
                       "sample": self.sample, "versions": {h: EXPECTED[h] for h in HOSTS}}
        with open(os.path.join(self.out, "matrix.json"), "w", encoding="utf-8") as fh:
            json.dump(self.result, fh, indent=1, sort_keys=True)
        with open(os.path.join(self.out, "misses.md"), "w", encoding="utf-8") as fh:
            fh.write(misses_markdown(misses))
        return self.result

    def run(self):
        t0 = time.monotonic()
        self.cleanup()
        try:
            self.admit()
            self.predict()
            self.reality()
        finally:
            self.cleanup()
        self.times["total"] = time.monotonic() - t0
        return self.tally()


PREDICT_PLAY = """
- name: Capability snapshots of every generation, kept on the controller
  hosts: %(hosts)s
  gather_facts: false
  tasks:
    - name: Snapshot
      virtfleet.libvirt.virt_capabilities:
      register: snap
    - name: Keep it
      ansible.builtin.copy:
        content: "{{ snap.snapshot | to_json }}"
        dest: "%(snaps)s/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost

- name: Every admitted domain of each source against every other generation's snapshot
  hosts: %(hosts)s
  gather_facts: false
  tasks:
    - name: Predict (upgrade_readiness, check mode)
      virtfleet.libvirt.virt_policy:
        domains: "{{ matrix_domains[inventory_hostname] }}"
        rules:
          upgrade_readiness:
            target: "{{ lookup('ansible.builtin.file', '%(snaps)s/' ~ item ~ '.json') | from_json }}"
      check_mode: true
      loop: "{{ ansible_play_hosts_all | difference([inventory_hostname]) }}"
      register: predicted
      when: matrix_domains[inventory_hostname] | length > 0
    - name: Keep the predictions
      ansible.builtin.copy:
        content: "{{ predicted.results | default([]) | to_json }}"
        dest: "%(snaps)s/predictions-{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
"""


def misses_markdown(misses):
    if not misses:
        return "No misses: every prediction matched what happened.\n"
    lines = ["| domain | pair | predicted | reasons | happened | libvirt's error | XML |", "|---|---|---|---|---|---|---|"]
    for m in misses:
        lines.append("| %s (%s) | %s | %s | %s | %s (%s) | %s | %s |" % (
            m["domain"], m["origin"], m["pair"], m["predicted"], ", ".join(m["reasons"]) or "-", m["happened"],
            m["stage"] or "-", (m["libvirt_error"] or "-").replace("|", "\\|").replace("\n", " "), m["xml_file"]))
    return "\n".join(lines) + "\n"


def format_matrix(result):
    rows = ["%-22s %14s %14s %14s %14s" % ("source -> target", "pred starts", "pred starts", "pred won't", "pred won't"),
            "%-22s %14s %14s %14s %14s" % ("", "& started", "& FAILED", "& STARTED", "& failed")]
    for pair, c in list(result["pairs"].items()) + [("total", result["total"])]:
        counts = (c["starts/started"], c["starts/failed"], c["wont/started"], c["wont/failed"])
        rows.append("%-22s %14d %14d %14d %14d" % ((pair,) + counts))
    rows.append("misses: %d; admitted per source: %s; times: %s" % (
        len(result["misses"]), result["admitted"], {k: round(v, 1) for k, v in result["times_s"].items()}))
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--full", action="store_true", help="every runnable corpus definition of each generation")
    parser.add_argument("--sample", type=int, default=CI_SAMPLE, help="corpus domains per source (default %(default)s)")
    args = parser.parse_args(argv)
    gen = Generations()
    try:
        matrix = Matrix(gen, sample=0 if args.full else args.sample, tries=None if args.full else CI_TRIES,
                        log=lambda m: print(m, file=sys.stderr))
        result = matrix.run()
    finally:
        gen.close()
    print(format_matrix(result))
    print(misses_markdown(result["misses"]))
    return 1 if result["misses"] else 0


if __name__ == "__main__":
    sys.exit(main())
