"""`lqer-hw sim`: the exact command-line form of the issue, and its input checks."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cli import main as sim_main
from sim.runner import simulator_available
from sw.blockmath import block_dot
from sw.mxint import MXIntFormat, MXQuantized, quantize_exact


def _dot_inputs(n=6, block=16, seed=0):
    rng = np.random.default_rng(seed)
    return {"x_exponents": rng.integers(-127, 128, n),
            "x_mantissas": rng.integers(-127, 128, (n, block)),
            "w_exponents": rng.integers(-127, 128, (n, 1)),
            "w_mantissas": rng.integers(-7, 8, (n, 1, block))}


def _run(argv, capsys):
    code = sim_main(argv, prog="lqer-hw sim")
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.sim
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_sim_dot_writes_the_rtl_outputs(tmp_path, capsys, simulator):
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} is not installed")
    ins = _dot_inputs()
    np.savez(tmp_path / "in.npz", **ins)
    code, out, err = _run(["dot-array", "-p", "lanes=1", "-p", "block=16", "-p", "a_width=8",
                           "-p", "w_width=4",
                           "--inputs", str(tmp_path / "in.npz"), "--outputs",
                           str(tmp_path / "out.npz"), "--simulator", simulator], capsys)
    assert code == 0, err
    res = np.load(tmp_path / "out.npz")
    qx = MXQuantized(ins["x_mantissas"], ins["x_exponents"][:, None], MXIntFormat(8, 16), 1)
    qw = MXQuantized(ins["w_mantissas"][:, 0], ins["w_exponents"], MXIntFormat(4, 16), 1)
    sums, lsb = block_dot(qx, qw)
    assert np.array_equal(res["sums"], sums) and np.array_equal(res["exponents"], lsb)
    assert "6 inputs, 6 outputs" in out


@pytest.mark.sim
def test_sim_quantize_writes_mxint_blocks(tmp_path, capsys):
    if not simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    rng = np.random.default_rng(1)
    values = rng.integers(-2 ** 11, 2 ** 11, (9, 8)) >> rng.integers(0, 12, (9, 1))
    np.savez(tmp_path / "in.npz", values=values)
    code, _, err = _run(["quantizer", "-p", "block=8", "-p", "in_width=12", "-p", "frac_bits=5",
                         "-p", "width=6", "--inputs", str(tmp_path / "in.npz"), "--outputs",
                         str(tmp_path / "out.npz"), "--check", "--stall", "0.3"], capsys)
    assert code == 0, err
    res = np.load(tmp_path / "out.npz")
    ref = quantize_exact(values, -5, width=6, block=8)
    assert np.array_equal(res["exponents"], ref.exponents[:, 0])
    assert np.array_equal(res["mantissas"], ref.mantissas)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("w_exponents"), "inputs must contain field 'w_exponents' (fields: "
                                       "x_exponents, x_mantissas, w_exponents, w_mantissas)"),
    (lambda d: d.update(x_mantissas=d["x_mantissas"][:, :8]),
     "x_mantissas must have shape (N, 16) with N = 6; got (6, 8)"),
    (lambda d: d.update(w_exponents=d["w_exponents"][:5]),
     "w_exponents must have shape (N, 1) with N = 6; got (5, 1)"),
    (lambda d: d["w_mantissas"].__setitem__((2, 0, 3), 8), "w_mantissas must be in -7..7; got 8"),
    (lambda d: d["x_exponents"].__setitem__(0, -128), "x_exponents must be in -127..127; got -128"),
    (lambda d: d.update(x_exponents=d["x_exponents"] + 0.5),
     "x_exponents must be an integer array; got dtype float64"),
])
def test_malformed_inputs_get_one_line_and_no_simulation(tmp_path, capsys, mutate, message):
    ins = _dot_inputs()
    mutate(ins)
    np.savez(tmp_path / "in.npz", **ins)
    code, out, err = _run(["dot-array", "-p", "lanes=1", "--inputs", str(tmp_path / "in.npz"),
                           "--outputs",
                           str(tmp_path / "out.npz")], capsys)
    assert code == 2
    assert err == f"lqer-hw sim: error: {message}\n"
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("argv, message", [
    (["dot-array", "--inputs", "/nonexistent.npz", "--outputs", "o.npz"],
     "--inputs must name an existing .npz file; got '/nonexistent.npz'"),
    (["dot-array", "-p", "block=3", "--inputs", "x", "--outputs", "o.npz"],
     "block must be a power of two in 1..256; got 3"),
    (["dot-array", "--inputs", "x", "--outputs", "o.npz", "--simulator", "vcs"], "invalid choice: 'vcs'"),
    (["nope", "--inputs", "x", "--outputs", "o.npz"], "design must be one of"),
])
def test_bad_command_lines(argv, message, capsys):
    code, _, err = _run(argv, capsys)
    assert code == 2 and err.startswith("lqer-hw sim: error: ") and message in err
    assert err.count("\n") == 1


def test_not_an_npz_and_accumulator_last_flag(tmp_path, capsys):
    (tmp_path / "junk.npz").write_text("not a zip")
    code, _, err = _run(["dot-array", "--inputs", str(tmp_path / "junk.npz"), "--outputs",
                         str(tmp_path / "o.npz")], capsys)
    assert code == 2 and "--inputs must be a NumPy .npz archive" in err
    np.savez(tmp_path / "acc.npz", sums=np.ones((3, 1), int), exponents=np.zeros((3, 1), int),
             last=np.array([0, 1, 0]))
    code, _, err = _run(["accumulator", "--inputs", str(tmp_path / "acc.npz"), "--outputs",
                         str(tmp_path / "o.npz")], capsys)
    assert (code, err) == (2, "lqer-hw sim: error: last must be 1 on the final partial "
                              "(last[-1]); got 0\n")


def test_help_documents_the_fields_of_every_design(capsys):
    with pytest.raises(SystemExit):
        sim_main(["--help"], prog="lqer-hw sim")
    out = capsys.readouterr().out
    for field in ("x_exponents", "x_mantissas", "w_exponents", "w_mantissas", "sums",
                  "exponents", "values", "mantissas", "last"):
        assert field in out
    for design in ("quantizer:", "dot-array:", "accumulator:", "lqer-linear:"):
        assert design in out
