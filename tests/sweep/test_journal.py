"""sweep.journal: whole lines, a cut line dropped, bad lines named, concurrent writers."""

import json
import multiprocessing

import pytest

from sweep.journal import Journal


def test_append_and_read_back(tmp_path):
    j = Journal(tmp_path)
    j.append({"key": "a", "status": "ok", "perplexity": 1.5})
    j.append({"key": "b", "status": "failed", "error": "ValueError: x"})
    assert j.rows() == {"a": {"key": "a", "status": "ok", "perplexity": 1.5},
                        "b": {"key": "b", "status": "failed", "error": "ValueError: x"}}
    # sorted keys: equal rows are equal lines
    assert j.path.read_text().splitlines()[0] == '{"key": "a", "perplexity": 1.5, "status": "ok"}'


def test_a_line_cut_short_is_dropped(tmp_path):
    j = Journal(tmp_path)
    j.append({"key": "a", "status": "ok"})
    with open(j.path, "a") as f:
        f.write('{"key": "b", "sta')
    assert set(j.rows()) == {"a"}
    assert j.repair() == len('{"key": "b", "sta')
    j.append({"key": "c", "status": "ok"})
    assert set(j.rows()) == {"a", "c"}


def test_a_line_that_is_not_a_row_is_named(tmp_path):
    j = Journal(tmp_path)
    j.append({"key": "a"})
    with open(j.path, "a") as f:
        f.write("not json\n")
    with pytest.raises(ValueError, match=r"line 2 is not a result row"):
        j.rows()


def test_drop(tmp_path):
    j = Journal(tmp_path)
    for k in "abc":
        j.append({"key": k})
    assert j.drop({"b"}) == 1
    assert list(j.rows()) == ["a", "c"]


def _writer(folder, name, n):
    j = Journal(folder)
    for i in range(n):
        j.append({"key": f"{name}-{i}", "payload": "x" * (1000 + i)})


def test_concurrent_writers_never_interleave(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), f"w{w}", 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = Journal(tmp_path).path.read_text().splitlines()
    assert len(lines) == 160
    assert {json.loads(line)["key"] for line in lines} == {f"w{w}-{i}" for w in range(4)
                                                         for i in range(40)}


def test_a_key_is_written_once_even_by_two_writers(tmp_path):
    first, second = Journal(tmp_path), Journal(tmp_path)
    assert first.append({"key": "a", "v": 1})
    assert not second.append({"key": "a", "v": 1})  # the other sweep finished it first
    assert second.append({"key": "b", "v": 2})
    assert not first.append({"key": "b", "v": 2})
    assert len(first.path.read_text().splitlines()) == 2
