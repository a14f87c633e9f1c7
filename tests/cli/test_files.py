"""lqer_hw.files: atomic files with the user's umask, output checks, folders swapped in whole."""

import os
import threading

import pytest

import lqer_hw.files as files
from lqer_hw.args import UsageError
from lqer_hw.files import OutputFolder, atomic_file, check_output_file, check_output_folder, write_text


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)
    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_users_umask(tmp_path, umask, mask, mode):
    umask(mask)
    write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode


def test_an_existing_file_keeps_its_mode_and_is_replaced_whole(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    path.chmod(0o640)
    write_text(path, "new")
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_part_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(path) as handle:
            handle.write(b"half")
            raise KeyboardInterrupt
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_parallel_writers_of_one_path_never_mix(tmp_path):
    path = tmp_path / "a.txt"
    texts = [str(i) * 100_000 for i in range(8)]
    threads = [threading.Thread(target=write_text, args=(path, t)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_text() in texts and os.listdir(tmp_path) == ["a.txt"]


def test_output_folder_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a").write_text("x")
    (tmp_path / "empty").mkdir()
    cases = {
        "f/sub": "out must not lie under a file; got 'f/sub' ('f' is a file)",
        "f/sub/deeper": "out must not lie under a file; got 'f/sub/deeper' ('f' is a file)",
        "f": "out must be a folder (new or empty); got the file 'f'",
        "full": "out must be a new or empty folder (or give --overwrite); got 'full' with 1 entry",
        ".": "out must not be the working folder or one above it; got '.'",
        "..": "out must not be the working folder or one above it; got '..'",
        "": "out must name a folder or file; got ''",
    }
    for path, message in cases.items():
        with pytest.raises(UsageError) as info:
            check_output_folder(path, overwrite=False)
        assert str(info.value) == message
    assert check_output_folder("empty", overwrite=False) == tmp_path / "empty"
    assert check_output_folder("full", overwrite=True) == tmp_path / "full"
    assert check_output_folder("new/deeper", overwrite=False) == tmp_path / "new" / "deeper"
    assert sorted(os.listdir(tmp_path)) == ["empty", "f", "full"]  # checks write nothing


def test_output_file_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("x")
    (tmp_path / "d.npz").mkdir()
    cases = {
        "f/out.npz": "outputs must not lie under a file; got 'f/out.npz' ('f' is a file)",
        "out.txt": "outputs must end in .npz; got 'out.txt'",
        "d.npz": "outputs must be a file, not a folder; got 'd.npz'",
        "no/out.npz": "outputs must be in an existing folder; got 'no/out.npz'",
    }
    for path, message in cases.items():
        with pytest.raises(UsageError) as info:
            check_output_file(path, name="outputs", suffix=".npz")
        assert str(info.value) == message
    assert check_output_file("out.npz", name="outputs", suffix=".npz") == tmp_path / "out.npz"


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_output_folder_is_swapped_in_whole(tmp_path, monkeypatch, umask, exchange):
    if not exchange:
        monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    folder = OutputFolder(out, overwrite=True)
    with folder as tmp:
        write_text(tmp / "new.txt", "new")
        assert (out / "old.txt").exists()  # the old folder stays until the new one is complete
    assert os.listdir(out) == ["new.txt"] and os.listdir(tmp_path) == ["out"]
    assert out.stat().st_mode & 0o777 == 0o755


def test_a_failed_command_leaves_the_old_folder_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with OutputFolder(out, overwrite=True) as tmp:
            write_text(tmp / "new.txt", "new")
            raise KeyboardInterrupt
    assert os.listdir(out) == ["old.txt"] and os.listdir(tmp_path) == ["out"]
    with pytest.raises(ValueError):  # parents created for a new folder go again too
        with OutputFolder(tmp_path / "a" / "b" / "c"):
            raise ValueError("failed")
    assert os.listdir(tmp_path) == ["out"]


def test_a_folder_filled_meanwhile_is_not_replaced_without_overwrite(tmp_path):
    out = tmp_path / "out"
    folder = OutputFolder(out)
    with pytest.raises(UsageError) as info:
        with folder as tmp:
            write_text(tmp / "mine.txt", "x")
            out.mkdir()
            (out / "theirs.txt").write_text("y")
    assert str(info.value) == (f"out must be a new or empty folder (or give --overwrite); got "
                               f"'{out}', filled by another process meanwhile")
    assert os.listdir(out) == ["theirs.txt"] and os.listdir(tmp_path) == ["out"]
