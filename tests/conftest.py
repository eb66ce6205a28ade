"""Make the repository importable as ``ansible_collections.virtfleet.libvirt``.

The repo root is the collection. pytest imports it through a symlink farm under .build/ so
the tests need no install step (ansible-test, which refuses symlinks, runs from a copy).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
_LINK = os.path.join(COLLECTIONS, "ansible_collections", "virtfleet", "libvirt")

if not os.path.exists(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    try:
        os.symlink(ROOT, _LINK)
    except FileExistsError:  # another xdist worker won the race
        pass
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", COLLECTIONS)
