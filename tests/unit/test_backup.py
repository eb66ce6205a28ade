"""_backup: 0700 directory, 0600 files, refusals that name backup_dir."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.virtfleet.libvirt.plugins.module_utils import _backup
from ansible_collections.virtfleet.libvirt.plugins.module_utils._errors import InvalidRequest


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def test_new_dir_is_0700_and_file_0600(tmp_path, loose_umask):
    target = str(tmp_path / "a" / "b" / "backups")
    path = _backup.write_backup(target, "web01", "5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11", "<domain passwd='x'/>")
    assert mode(target) == 0o700
    assert mode(path) == 0o600
    assert os.path.dirname(path) == target
    with open(path, encoding="utf-8") as fh:
        assert fh.read() == "<domain passwd='x'/>"
    assert os.path.basename(path).startswith("web01-5d3c1a0e-8c1f-4b43-9a57-0d0c6f7b2a11-")
    assert path.endswith(".xml")


def test_preexisting_0755_dir_is_tightened_to_0700(tmp_path, loose_umask):
    target = tmp_path / "backups"
    target.mkdir(mode=0o755)
    os.chmod(str(target), 0o755)
    assert _backup.prepare_backup_dir(str(target)) == str(target)
    assert mode(str(target)) == 0o700


def test_file_is_0600_even_with_permissive_umask(tmp_path, loose_umask):
    path = _backup.write_backup(str(tmp_path), "x", "u", "<domain/>")
    assert mode(path) == 0o600


def test_unsafe_name_is_sanitised_and_stays_in_dir(tmp_path):
    path = _backup.write_backup(str(tmp_path), "../../etc/evil name", "u", "<domain/>")
    assert os.path.dirname(path) == str(tmp_path)
    assert "/" not in os.path.basename(path) and " " not in os.path.basename(path)


def test_two_backups_never_overwrite_each_other(tmp_path):
    a = _backup.write_backup(str(tmp_path), "d", "u", "<domain>1</domain>")
    b = _backup.write_backup(str(tmp_path), "d", "u", "<domain>2</domain>")
    assert a != b
    assert open(a).read() == "<domain>1</domain>" and open(b).read() == "<domain>2</domain>"


@pytest.mark.parametrize("bad", ["backups", "./backups", "~/backups", "", None])
def test_relative_or_empty_path_refused(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidRequest) as err:
        _backup.prepare_backup_dir(bad)
    assert "backup_dir must be an absolute path" in err.value.msg
    assert repr(bad) in err.value.msg
    assert "Nothing was changed" in err.value.msg
    assert os.listdir(str(tmp_path)) == []


def test_dir_below_a_file_is_refused_naming_backup_dir(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    target = str(blocker / "backups")
    with pytest.raises(InvalidRequest) as err:
        _backup.prepare_backup_dir(target)
    assert "Cannot use backup_dir %s" % target in err.value.msg
    assert "writable absolute directory" in err.value.msg
    assert err.value.details == {"backup_dir": target}


def test_existing_file_as_backup_dir_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InvalidRequest) as err:
        _backup.write_backup(str(target), "d", "u", "<domain/>")
    assert "Cannot use backup_dir %s" % target in err.value.msg


def test_unwritable_dir_is_refused_naming_backup_dir(tmp_path, monkeypatch):
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() != 0:
        os.chmod(str(target), 0o500)
        monkeypatch.setattr(os, "chmod", lambda *a, **k: None)  # keep it read-only
    else:  # root can write anywhere: make the access check say what it would for anyone else
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m: False if p == str(target) else real_access(p, m))
    with pytest.raises(InvalidRequest) as err:
        _backup.write_backup(str(target), "d", "u", "<domain/>")
    assert "Cannot use backup_dir %s (not writable)" % target in err.value.msg
    assert err.value.details["backup_dir"] == str(target)
