"""scripts/hw_tables.py: the generated hardware tables of docs/hw.md and docs/synth.md."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("hw_tables", ROOT / "scripts" / "hw_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_design_table_in_docs_is_current(tmp_path, capsys):
    # no result folders: only the design table is checked
    assert _script().main(["--check", "--synth", str(tmp_path), "--pnr", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""


def test_design_table_has_every_registered_design_with_its_latency():
    from hw.designs import elaborate
    from hw.synth.defaults import registered_designs
    from hw.unused import inspected
    rows = _script().designs_table().splitlines()[2:]
    designs = registered_designs()
    assert len(rows) == len(designs)
    for row, design in zip(rows, designs):
        cells = [c.strip() for c in row.strip("|").split("|")]
        # a part with no fixed latency (the compaction network: passes per outlier count) shows –
        latency = getattr(inspected(elaborate(design.name, **design.defaults)), "latency", None)
        assert cells[0] == f"`{design.name}`"
        assert cells[-1] == ("–" if latency is None else str(latency))


def _record(design, target, luts, **extra):
    return {"design": design, "params": {"lanes": 1}, "target": target, "flow": "full",
            "yosys": "Yosys 0.70", "luts": luts, "ffs": 10, **extra}


def test_result_blocks_come_from_the_report_files(tmp_path):
    script = _script()
    synth = [_record("dot-array", "xc7", 100, cpu_s=2.0, yosys_s=2.0),
             _record("dot-array", "ecp5", 150, cpu_s=4.0, yosys_s=4.0)]
    pnr = [_record("dot-array", "ecp5-nodsp", 160, fmax_mhz=151.26, pnr_family="ecp5",
                   pnr_device="LFE5U-85F"),
           _record("lqer-linear", "ice40", None, fmax_mhz=None, pnr_family="ice40",
                   pnr_device="HX8K", pnr_note="does not fit")]
    (tmp_path / "synth.json").write_text(json.dumps(synth))
    (tmp_path / "pnr.json").write_text(json.dumps(pnr))
    block = script.synth_block(script._records(tmp_path, "synth"))
    assert block.startswith("Yosys 0.70, flow full;")
    assert "| dot-array | lanes=1 | 100 | 150 |" in block
    assert "2 Yosys runs, 6 CPU seconds in all" in block
    rows = script.pnr_block(script._records(tmp_path, "pnr")).splitlines()
    assert rows[2] == "| dot-array | lanes=1 | ecp5 | LFE5U-85F | 160 | 10 | 151.3 |  |"
    assert rows[3].endswith("| – | does not fit |")
    assert rows[-1] == "At or above 150 MHz on ecp5: 1 of 1 points; below: none."
    pnr.append(_record("fp32-add", "ecp5-nodsp", 90, fmax_mhz=143.21, pnr_family="ecp5",
                       pnr_device="LFE5U-85F"))
    assert script.pnr_block(pnr).splitlines()[-1] == \
        "At or above 150 MHz on ecp5: 1 of 2 points; below: `fp32-add` 143.2."
    assert script._records(tmp_path / "missing", "synth") is None


def test_split_block_sums_the_parts_against_the_whole():
    script = _script()
    names = (*script.SPLIT_WHOLE, *(n for n, _ in script.SPLIT_PARTS))
    figures = {n: {"luts": 100, "ffs": 50, "dsps": 1, "carries": 2, "brams": 0, "lutrams": 3}
               for n in names}
    figures["llm-int8-linear"] = {"luts": 800, "ffs": 400}
    figures["fp16-linear"] = {"luts": 1200, "ffs": 900}
    from hw.designs import get_design
    params = {n: dict(get_design(n).defaults) for n in names}
    block = script.split_block(figures, params)
    rows = [r for r in block.splitlines() if r.startswith("| ")]
    assert len(rows) == 1 + len(names)
    assert rows[1].startswith("| fp16-linear | whole datapath | d_in=64 ")
    assert rows[1].endswith("| 1,200 | 900 | 0 | 0 | 0 | 0 |")
    assert "The parts add up to 600 of the datapath's 800 LUTs (75%) and 300 of its 400 FFs " \
           "(75%)" in block
    assert "`fp16-linear` is 1.50x the LUTs of `llm-int8-linear`" in block
