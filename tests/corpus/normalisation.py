"""libvirt's normalisation on redefine, measured on the corpus (prints Markdown; see docs/corpus.md).

    .venv/bin/python tests/corpus/normalisation.py [--uri qemu:///system] [FILE.xml ...]

For every corpus file that libvirt accepts here: define it, read X1 (INACTIVE|SECURE), define X1
unchanged, read X2, define X2, read X3; classify every difference X1->X2 and X2->X3 and say whether
X2 == X3. Also checks that defining X1 as a new domain (the corpus test's twin) gives the same X2.
Needs the lab daemon (scripts/lab.sh) and the corpus (scripts/corpus.sh, run by this script).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import libvirt  # noqa: E402

import _lablib  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=os.environ.get("LIBVIRT_URI", "qemu:///system"))
    parser.add_argument("files", nargs="*", help="corpus file names (default: all)")
    args = parser.parse_args(argv)
    directory = _lablib.corpus_dir()
    conn = libvirt.open(args.uri)
    try:
        records, seconds = _lablib.timed_study(conn, directory, args.files or None)
    finally:
        conn.close()
    sys.stdout.write(_lablib.report(records, directory, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
