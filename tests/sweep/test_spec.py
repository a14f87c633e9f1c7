"""sweep.spec: TOML and --grid specs expanded into points that eval's own rules check."""

import pytest

from sweep.spec import SpecError, expand, grid_spec, load_spec
from sw.llm_int8_cli import METHODS as INT8_METHODS
from sw.qconfig import METHODS
from hw.synth.targets import target_names

EVAL_METHODS = ", ".join(METHODS + INT8_METHODS)  # eval's --method choices


def _expand_text(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return expand(load_spec(str(path)))


def test_default_spec_is_the_issue_grid():
    points = expand(load_spec("default"))
    labels = [p.label for p in points]
    assert labels[:7] == ["fp", "w8a8", "llm-int8", "resq W4A8", "mxint W4A8", "mxint W3A8",
                          "mxint W2A8"]
    assert {"lqer W4A8 r32", "l2qer W4A8 r32", "lqer W2A8 r64", "l2qer W3A8 r8"} <= set(labels)
    assert len(points) == 1 + 2 + 1 + 3 + 2 * 3 * 4
    mx = [p for p in points if p.config["method"] not in ("fp", "w8a8", "llm-int8")]
    assert all(p.config["block"] == 16 and p.config["a_width"] == 8 for p in mx)
    assert points[2].config["threshold"] == 6.0
    assert all(p.hardware == {"macs_per_cycle": 16} for p in points)
    # settings go only to the methods that take them: fp gets no a-width, no block
    assert points[0].argv == ("--model", "default", "--data", "default", "--method", "fp")
    assert len({p.key for p in points}) == len(points)


def test_defaults_written_out_give_the_same_point(tmp_path):
    implicit = _expand_text(tmp_path, '[[grid]]\nmethod = "lqer"\n')
    explicit = _expand_text(tmp_path, '[[grid]]\nmethod = "lqer"\nrank = 32\nw-width = 4\n'
                                      'block = 16\nlowrank-width = 8\n')
    assert implicit[0].key == explicit[0].key
    assert implicit[0].config == explicit[0].config


def test_duplicates_run_once_and_order_is_the_spec_order(tmp_path):
    points = _expand_text(tmp_path, '[[grid]]\nmethod = ["mxint", "lqer"]\nw-width = [4, 3]\n'
                                    '[[grid]]\nmethod = "mxint"\nw-width = 4\n')
    assert [p.label for p in points] == ["mxint W4A8", "mxint W3A8", "lqer W4A8 r32",
                                         "lqer W3A8 r32"]
    assert [p.index for p in points] == [0, 1, 2, 3]


def test_key_depends_on_hardware_targets_and_provider(tmp_path):
    base = '[[grid]]\nmethod = "mxint"\n'
    a = _expand_text(tmp_path, base)[0].key
    assert _expand_text(tmp_path, "[sweep]\nmacs-per-cycle = 32\n" + base)[0].key != a
    assert _expand_text(tmp_path, '[sweep]\ntargets = ["lut6"]\n' + base)[0].key != a
    assert _expand_text(tmp_path, '[sweep]\narea = "m:f"\n' + base)[0].key != a


def test_grid_options_form_one_table():
    points = expand(grid_spec(["method=lqer,l2qer", "rank=8,16", "max-windows=4"]))
    assert [p.label for p in points] == ["lqer W4A8 r8", "lqer W4A8 r16", "l2qer W4A8 r8",
                                         "l2qer W4A8 r16"]
    assert all(p.config["max_windows"] == 4 for p in points)


def test_bit_true_flag_and_labels_of_what_varies(tmp_path):
    points = _expand_text(tmp_path, '[[grid]]\nmethod = "mxint"\nbit-true = [false, true]\n'
                                    'max-windows = 2\n')
    assert [p.config["arithmetic"] for p in points] == ["fast", "bit-true"]
    assert points[1].config["guard_bits"] == 8
    assert [p.label for p in points] == ["mxint W4A8 arithmetic=fast",
                                         "mxint W4A8 arithmetic=bit-true"]


@pytest.mark.parametrize("text,line", [
    ('[[grid]]\nmethod = "gptq"\n',
     f"point 1 ([[grid]] 1: method=gptq): method must be one of {EVAL_METHODS}; got 'gptq'"),
    ('[[grid]]\nmethod = "lqer"\nw-width = [4, 17]\n',
     "point 2 ([[grid]] 1: method=lqer w-width=17): w-width must be an integer in 2..16; got '17'"),
    ('[[grid]]\nmethod = "lqer"\nrank = 0\n',
     "point 1 ([[grid]] 1: method=lqer rank=0): rank must be an integer >= 1; got '0'"),
    ('[[grid]]\nmethod = "mxint"\nrank = 8\n',
     "point 1 ([[grid]] 1: method=mxint rank=8): rank must not be given with --method mxint "
     "(it applies to lqer, l2qer only); got 8"),
    ('[[grid]]\nmethod = "lqer"\nfoo = 1\n',
     "spec key must be an eval option or macs-per-cycle, targets, area; got 'foo' in [[grid]] 1"),
    ('[sweep]\nmodel = "default"\n',
     "grid must have at least one table ([[grid]] or --grid); got none in S"),
    ('[[grid]]\nmethod = "lqer"\nrank = []\n',
     "rank in [[grid]] 1 must list at least one value; got []"),
    ('[[grid]]\nrank = 8\n', "[[grid]] 1 must give method; got keys rank"),
    ('[sweep]\ntargets = ["xc9"]\n[[grid]]\nmethod = "fp"\n',
     f"targets: target must be one of {', '.join(target_names(True))}; got 'xc9'"),
    ('[sweep]\nmacs-per-cycle = 0\n[[grid]]\nmethod = "fp"\n',
     "macs-per-cycle must be an integer >= 1; got 0"),
    ('[sweep]\nquantized = "x"\n[[grid]]\nmethod = "fp"\n',
     "spec key must be an eval option or macs-per-cycle, targets, area; got 'quantized' in [sweep]"),
    ('[other]\n[[grid]]\nmethod = "fp"\n', "spec tables must be [sweep] and [[grid]]; got 'other'"),
])
def test_bad_specs_are_one_line_each(tmp_path, text, line):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        expand(load_spec(str(path)))
    assert [m.replace(str(path), "S") for m in info.value.lines] == [line]


def test_every_bad_point_is_reported(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[grid]]\nmethod = ["lqer", "nope"]\nw-width = [1, 4]\n')
    with pytest.raises(SpecError) as info:
        expand(load_spec(str(path)))
    assert len(info.value.lines) == 3  # lqer w1, nope w1, nope w4
    assert all(line.startswith("point ") for line in info.value.lines)


def test_unreadable_and_bad_toml(tmp_path):
    with pytest.raises(SpecError, match=r"^SPEC must be a TOML file or 'default'; got 'nope.toml' "):
        load_spec("nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[grid]\n")
    with pytest.raises(SpecError, match=r"^SPEC must be valid TOML"):
        load_spec(str(bad))
