"""The area provider of ``lqer-hw sweep``: ``hw.cost:area(method_config, target)``.

The sweep (``sweep/area.py``, docs/sweep.md) calls, per point and target::

    area(method_config: dict, target: str) -> {"area": float, "unit": str, ...}

``method_config`` is the point's canonical ``lqer-hw eval`` configuration plus its
hardware fields, with the method in the cost model's names (``fp16``, ``w8a8``,
``mxint``, ``lqer``, ``l2qer``, ``llm-int8``, ``llm-int4``, ``resq``; ``fp`` is taken as
``fp16``). Keys read (``None`` or absent: the default of ``lqer-hw cost``):

- ``model`` (``"default"``, a folder or ``config.json``, or a built-in shape set such as
  ``llama-7b``), ``layers`` (a regular expression searched in the layer names, as
  ``lqer-hw eval --layers``: only the layers it selects are costed);
- ``macs_per_cycle`` (iso-throughput), ``block`` (absent: the largest power of two up to
  16 that divides ``macs_per_cycle``, so the sweep's FP16 baseline, which gives no block,
  matches any throughput), ``w_width``, ``a_width``, ``exponent_bits``, ``guard_bits``
  (bit-true arithmetic; else the datapath's default);
- ``lqer`` / ``l2qer``: ``rank`` (a rank that is not a multiple of the block is costed
  on the engine of the next multiple: its factors zero-padded, as the reference pads a
  short block; reported as ``rank_costed``), ``lowrank_width`` (must equal ``a_width``:
  ``lqer-linear`` has one low-rank array), ``blocking`` (must be ``reduction``);
- every MXINT method: ``flavour`` ``ocp`` and ``rounding`` ``even`` (the datapath's
  quantizer, :mod:`sw.datapath`);
- ``resq``: ``high_width`` (8), ``resq_rank`` (``auto``: ``d_in / 8`` per layer, or an
  integer multiple of the block), ``resq_format`` (``mxint``); down projections are
  costed like the other layers and the online Hadamard transform is not counted
  (docs/cost.md);
- ``llm-int8`` / ``llm-int4``: ``outlier_columns`` (one count for every layer) or
  ``outliers`` (a ``lqer-hw profile`` JSON of the model); without either, at the
  default ``threshold`` 6.0 and ``outlier_group`` (a whole batch): the embedded model's
  profile (:data:`DEFAULT_PROFILE`) or a built-in shape set's published count (LLaMA-7B:
  353); ``outlier_sizing`` (default ``p99``); ``outlier_weights`` ``int8`` (the gathered
  weights are the int8 ones, dequantized).

Other keys (data, calibration, SVD, seeds, device, ...) do not change the hardware and
are ignored. A value the cost model cannot honour raises ``ValueError`` with one line
naming the key (``PARAM must be ...; got ...``).

The result: ``area`` (the model engine's LUTs on an FPGA target, transistors on
``cmos``) and ``unit`` (``LUT`` or ``transistor``), with the engine's other figures
(``ffs``, ``dsps``, ``lutrams``, memories in bits and block RAMs, weight ``traffic_bits``
per token, ``cycles_per_token``, data-dependent ``extra_cycles``), ``source``
(``synthesised`` or ``estimated``), ``sized_by`` (the layer whose engine sizes the
model engine: :func:`hw.cost.model.model_totals`) and ``notes``. Parts are synthesised
through the cache (``$LQER_CACHE_DIR``, else ``~/.cache/lqer-hw``) and results are kept
per process, so a sweep pays for each part once.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
from pathlib import Path

__all__ = ["area", "cost_area", "request", "Request", "ALIASES"]

ALIASES = {"fp": "fp16"}            # eval's float model is the FP16 datapath
# The embedded model's LLM.int8() outlier profile, written by
# `lqer-hw profile --model default --data default --threshold 6.0 --out hw/cost/default_profile.json`
# (the whole held-out split; no column reaches 6.0 in any layer)
DEFAULT_PROFILE = Path(__file__).with_name("default_profile.json")
MXINT_METHODS = ("mxint", "lqer", "l2qer", "resq")
_MEMO: dict[tuple, dict] = {}


@dataclasses.dataclass(frozen=True)
class Request:
    """A validated area request: what :func:`cost_area` composes."""

    method: str
    target: str
    model: str
    layers: str | None
    cfg: object                    # hw.cost.methods.CostConfig
    outliers: str | None = None
    outlier_columns: int | None = None
    rank_given: int | None = None

    @property
    def key(self) -> tuple:
        return (self.method, self.target, self.model, self.layers, self.cfg, self.outliers,
                self.outlier_columns)


def _int(config: dict, key: str, default: int, low: int, high: int | None = None) -> int:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < low or \
            (high is not None and value > high):
        allowed = f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"
        raise ValueError(f"{key} must be {allowed}; got {value!r}")
    return value


def _choice(config: dict, key: str, allowed: str, why: str) -> None:
    value = config.get(key)
    if value is not None and value != allowed:
        raise ValueError(f"{key} must be {allowed!r} ({why}); got {value!r}")


def request(method_config: dict, target: str) -> Request:
    """``method_config`` and ``target`` checked (module docstring); ``ValueError`` naming
    the first key that cannot be honoured."""
    from hw.cost.cli import COST_TARGETS
    from hw.cost.methods import HIGH_WIDTH, METHODS, THRESHOLD, CostConfig
    from hw.cost.outliers import SIZINGS

    if not isinstance(method_config, dict):
        raise ValueError(f"method_config must be a dict; got {type(method_config).__name__}")
    c = method_config
    method = ALIASES.get(c.get("method"), c.get("method"))
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {c.get('method')!r}")
    if target not in COST_TARGETS:
        raise ValueError(f"target must be one of {', '.join(COST_TARGETS)}; got {target!r}")
    model = c.get("model") or "default"
    if not isinstance(model, str):
        raise ValueError(f"model must be a path, 'default' or a shape set name; got {model!r}")
    layers = c.get("layers")
    if layers is not None:
        try:
            re.compile(layers)
        except (re.error, TypeError) as exc:
            raise ValueError(f"layers must be a valid regular expression; got {layers!r} "
                             f"({exc})") from None
    d = CostConfig()
    fields = dict(macs_per_cycle=_int(c, "macs_per_cycle", d.macs_per_cycle, 1))
    block = c.get("block")
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or
                              not 1 <= block <= 256 or block & (block - 1)):
        raise ValueError(f"block must be a power of two in 1..256; got {block!r}")
    # absent (the sweep's FP16 baseline gives none): the lane width that fits the throughput,
    # the largest power of two up to the default block dividing macs_per_cycle
    fields["block"] = block = block or math.gcd(fields["macs_per_cycle"], d.block)
    fields["w_width"] = _int(c, "w_width", d.w_width, 2, 16)
    fields["a_width"] = _int(c, "a_width", d.a_width, 2, 16)
    fields["exponent_bits"] = _int(c, "exponent_bits", d.exponent_bits, 2, 8)
    fields["guard_bits"] = _int(c, "guard_bits", d.guard_bits, 0, 64)
    sizing = c.get("outlier_sizing")
    if sizing is not None and sizing not in SIZINGS:
        raise ValueError(f"outlier_sizing must be one of {', '.join(SIZINGS)}; got {sizing!r}")
    fields["outlier_sizing"] = sizing or d.outlier_sizing
    if method in MXINT_METHODS:
        _choice(c, "flavour", "ocp", "the datapath's quantizer")
        _choice(c, "rounding", "even", "round half to even, the datapath's quantizer")
    rank_given = None
    if METHODS[method].uses_rank:
        rank_given = _int(c, "rank", d.rank, 1)
        fields["rank"] = -(-rank_given // block) * block
        _choice(c, "blocking", "reduction", "A along d_in, B along the rank, the axes "
                "lqer-linear reduces")
        lowrank = c.get("lowrank_width")
        if lowrank is not None and lowrank != fields["a_width"]:
            raise ValueError(f"lowrank_width must equal a_width ({fields['a_width']}): "
                             f"lqer-linear's one low-rank dot array takes x, then t; "
                             f"got {lowrank!r}")
    if method in ("resq", "w8a8", "llm-int8", "llm-int4"):
        high = c.get("high_width")
        if high is not None and high != HIGH_WIDTH:
            raise ValueError(f"high_width must be {HIGH_WIDTH} (the cost model's int8 and "
                             f"high-precision paths); got {high!r}")
    if method == "resq":
        _choice(c, "resq_format", "mxint", "the datapath's number format")
        r = c.get("resq_rank")
        if r is not None and r != "auto":
            if isinstance(r, bool) or not isinstance(r, int) or r < 1 or r % block:
                raise ValueError(f"resq_rank must be 'auto' or a multiple of block ({block}); "
                                 f"got {r!r}")
            fields["resq_rank"] = r
    outliers = outlier_columns = None
    if METHODS[method].needs_outliers:
        outliers = c.get("outliers")
        outlier_columns = c.get("outlier_columns")
        if outliers is not None and outlier_columns is not None:
            raise ValueError("outliers must not be given with outlier_columns; got both")
        if outlier_columns is not None:
            outlier_columns = _int(c, "outlier_columns", 0, 0)
        threshold = c.get("threshold")
        if outliers is None and outlier_columns is None and threshold not in (None, THRESHOLD):
            raise ValueError(f"threshold must be {THRESHOLD} without outliers or "
                             f"outlier_columns (the published counts are at {THRESHOLD}); "
                             f"got {threshold!r}")
        group = c.get("outlier_group")
        if outliers is None and outlier_columns is None and group is not None:
            raise ValueError(f"outlier_group must be none (a whole batch, as the built-in "
                             f"counts) without outliers or outlier_columns; got {group!r}")
        _choice(c, "outlier_weights", "int8", "the outlier path dequantizes the gathered int8 "
                "weights")
    cfg = CostConfig(**fields).check()
    return Request(method, target, model, layers, cfg, outliers, outlier_columns, rank_given)


def _shapes(req: Request):
    """The costed layers of ``req.model`` and the profile for LLM.int8()."""
    from hw.cost.methods import METHODS
    from hw.cost.outliers import OutlierProfile, fixed_columns, read_profile
    from hw.cost.shapes import BUILTIN, read_model

    shapes = read_model(req.model)
    profile = None
    if METHODS[req.method].needs_outliers:
        if req.outliers is not None:
            profile = read_profile(req.outliers, shapes)
        elif req.outlier_columns is not None:
            profile = fixed_columns(req.outlier_columns, shapes)
        elif req.model == "default":
            measured = read_profile(str(DEFAULT_PROFILE), shapes)
            profile = OutlierProfile(f"the embedded model's profile ({DEFAULT_PROFILE.name})",
                                     measured.layers, measured.threshold)
        elif BUILTIN.get(req.model, {}).get("_outlier_columns"):
            n, source = BUILTIN[req.model]["_outlier_columns"]
            profile = OutlierProfile(f"{n} columns per layer ({source})",
                                     fixed_columns(n, shapes).layers)
        else:
            raise ValueError(f"outlier_columns (or outliers, a profile) must be given for "
                             f"{req.method} on model {req.model!r}; got neither")
    if req.layers is not None:
        regex = re.compile(req.layers)
        chosen = tuple(layer for layer in shapes.layers if regex.search(layer.name))
        if not chosen:
            raise ValueError(f"layers must match at least one linear layer of the model; got "
                             f"{req.layers!r}")
        shapes = dataclasses.replace(shapes, layers=chosen)
    cfg = req.cfg
    if METHODS[req.method].uses_rank:
        narrowest = min(shapes.layers, key=lambda layer: min(layer.d_in, layer.d_out))
        limit = min(narrowest.d_in, narrowest.d_out)
        if cfg.rank > limit:
            raise ValueError(f"rank must be at most min(d_in, d_out) of every layer ({limit} at "
                             f"{narrowest.name}); got {req.rank_given}"
                             + (f" (costed as {cfg.rank})" if cfg.rank != req.rank_given else ""))
    if req.method == "resq":
        narrowest = min(shapes.layers, key=lambda layer: layer.d_in)
        if -(-narrowest.d_in // cfg.block) < 2:
            raise ValueError(f"resq needs d_in of at least two blocks ({2 * cfg.block}) in every "
                             f"layer; got {narrowest.d_in} at {narrowest.name}")
        if cfg.resq_rank and cfg.resq_rank >= narrowest.d_in:
            raise ValueError(f"resq_rank must be below d_in of every layer ({narrowest.d_in} at "
                             f"{narrowest.name}); got {cfg.resq_rank}")
    return shapes, profile


_KEEP = ("luts", "ffs", "carries", "dsps", "lutrams", "transistors", "brams",
         "buffer_bits", "buffer_brams", "table_bits", "table_brams", "weights_bits",
         "weights_brams", "traffic_bits", "gather_bits", "steps_per_token", "cycles_per_token",
         "extra_cycles", "source", "synthesised_luts", "sized_by")


class _key_names:
    """Context manager: a ``ValueError`` from the command's checks names the key as the
    sweep spells it (``macs-per-cycle`` -> ``macs_per_cycle``)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, ValueError):
            param, _, rest = str(exc).partition(" ")
            if "-" in param and rest.startswith("must "):
                raise ValueError(f"{param.replace('-', '_')} {rest}") from None
        return False


def cost_area(method_config: dict, target: str, *, cache=None) -> dict:
    """:func:`area` with an explicit synthesis cache (a :class:`hw.synth.cache.ResultCache`,
    or None for none); the result is kept per process."""
    from hw.cost.cli import cost

    with _key_names():
        req = request(method_config, target)
    memo_key = (req.key, None if cache is None else str(cache.root))
    if memo_key not in _MEMO:
        with _key_names():
            shapes, profile = _shapes(req)
        with tempfile.TemporaryDirectory(prefix="lqer-cost-") as tmp:
            result = cost(shapes=shapes, methods=[req.method], cfg=req.cfg, targets=[target],
                          profile=profile, build=Path(tmp) / "synth", cache=cache)
        total = result["model_totals"][0]
        cmos = total.get("luts") is None
        out = {"area": total["transistors"] if cmos else total["luts"],
               "unit": "transistor" if cmos else "LUT",
               **{k: total.get(k) for k in _KEEP}, "layers_costed": total["layers"],
               "macs_per_cycle": req.cfg.macs_per_cycle, "cost_model": "hw.cost"}
        notes = []
        if req.rank_given is not None:
            out["rank_costed"] = req.cfg.rank
            if req.cfg.rank != req.rank_given:
                notes.append(f"rank {req.rank_given} costed on the rank-{req.cfg.rank} engine "
                             f"(factors zero-padded to whole blocks of {req.cfg.block})")
        if req.method == "resq":
            notes.append("down projections costed like the other layers; the online Hadamard "
                         "transform is not counted")
        if profile is not None:
            notes.append(f"outliers: {profile.source}, fp16 lanes sized at "
                         f"{req.cfg.outlier_sizing}")
        out["notes"] = notes
        _MEMO[memo_key] = out
    return dict(_MEMO[memo_key])


def area(method_config: dict, target: str) -> dict:
    """The area of ``method_config``'s model engine on ``target`` (module docstring): the
    sweep's provider. Uses the default synthesis cache; ``ValueError`` (one line) for a
    configuration it cannot cost."""
    from hw.synth.cache import ResultCache, default_cache_root

    return cost_area(method_config, target, cache=ResultCache(default_cache_root("synth")))
