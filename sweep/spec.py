"""The sweep spec: settings and grid tables, expanded into validated points.

A spec is a TOML file (``tomllib``) or ``--grid`` options::

    [sweep]                      # applies to every point whose method takes it
    model = "default"            # any `lqer-hw eval` option, by its flag name
    data = "default"
    a-width = 8
    macs-per-cycle = 16          # the cost model's throughput (iso-throughput)
    targets = ["xc7-nodsp", "lut6"]
    area = "hw.cost:area"        # the area provider, "module:function"

    [[grid]]                     # one table: the product of its lists
    method = ["lqer", "l2qer"]
    w-width = [4, 3, 2]
    rank = [8, 16, 32, 64]

Each point is one ``lqer-hw eval`` command line: it is parsed by eval's own
parser and checked by eval's own ``plan`` (``sw.cli_eval``), so every rule on
methods, widths, ranks and blocks is the project's (``sw.qconfig``,
``sw.options``), not a copy. A ``[sweep]`` value goes to the points whose
method takes it (``sw.cli.check_applicable`` decides: ``a-width`` is not given
to ``fp``); a ``[[grid]]`` key must apply to every method of its table.
Points with the same configuration are run once.

Every problem is one line (:class:`SpecError` holds them all), found before
anything runs or is written.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from lqer_hw.args import UsageError
from sw.options import Rule

__all__ = ["SCHEMA", "SWEEP_KEYS", "DEFAULT_TARGETS", "DEFAULT_AREA", "DEFAULT_SPEC", "SpecError",
           "Point", "Spec", "load_spec", "grid_spec", "expand", "check_with_models", "point_key",
           "eval_parser"]

SCHEMA = 1  # part of every point's key: a change in what a row means changes it
DEFAULT_TARGETS = ("xc7-nodsp", "lut6")
DEFAULT_AREA = "hw.cost:area"
DEFAULT_SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.toml")
HARDWARE_RULES = {"macs-per-cycle": Rule("int", 1)}   # keys the area depends on, not the perplexity
HARDWARE_DEFAULTS = {"macs-per-cycle": 16}            # the LQER authors' cost model's throughput
SETTING_KEYS = ("targets", "area")                    # [sweep] only
# eval options a sweep does not take: it computes the factors, prints nothing of eval's
_NOT_SWEPT = {"help", "json", "verbose", "quantized"}
SWEEP_KEYS = tuple(HARDWARE_RULES) + SETTING_KEYS
PROG = "lqer-hw sweep"


class SpecError(UsageError):
    """Bad spec: one line per problem in :attr:`lines` (the message is the first)."""

    def __init__(self, lines: list[str]):
        super().__init__(lines[0])
        self.lines = lines


@functools.lru_cache(maxsize=1)
def eval_parser():
    """``lqer-hw eval``'s parser: the option names, types and rules of a point."""
    from sw.cli import parser
    return parser("lqer-hw eval", "eval")


@functools.lru_cache(maxsize=1)
def _eval_options() -> dict[str, Any]:
    """flag name (no dashes) -> argparse action, for the eval options a sweep takes."""
    options = {}
    for action in eval_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and action.dest not in _NOT_SWEPT:
                options[flag[2:]] = action
    return options


@dataclass(frozen=True)
class Spec:
    """A parsed spec: settings, the grid tables (name -> values), targets and area provider."""

    source: str
    settings: dict[str, Any]               # eval options for every point (flag name -> value)
    hardware: dict[str, Any]               # macs-per-cycle
    targets: tuple[str, ...]
    area: str
    tables: list[dict[str, list]] = field(default_factory=list)


@dataclass(frozen=True)
class Point:
    """One point: an eval command line, its canonical configuration and its key."""

    index: int                 # position in the sweep (spec order)
    table: int                 # 1-based grid table it came from
    argv: tuple[str, ...]      # lqer-hw eval options
    config: dict               # canonical eval configuration (defaults filled)
    hardware: dict             # {"macs_per_cycle": ...}
    key: str                   # hash of config, hardware, targets and area provider
    label: str = ""

    def job(self, targets: tuple[str, ...], area: str) -> dict:
        """What a worker needs (JSON-able: it travels to processes and Ray tasks)."""
        return {"key": self.key, "label": self.label, "argv": list(self.argv),
                "config": self.config, "hardware": self.hardware, "targets": list(targets),
                "area": area, "index": self.index}


# ---------------------------------------------------------------- reading

def _where(table: int | None) -> str:
    return "[sweep]" if table is None else f"[[grid]] {table}"


def _scalar_ok(value) -> bool:
    return isinstance(value, (bool, int, float, str))


def _check_key(key: str, options: dict, table: int | None, errors: list[str]) -> bool:
    allowed = key in options or key in HARDWARE_RULES or (table is None and key in SETTING_KEYS)
    if not allowed:
        errors.append(f"spec key must be an eval option or {', '.join(SWEEP_KEYS)}; got {key!r} "
                      f"in {_where(table)}")
    return allowed


def _settings(raw: dict, options: dict, errors: list[str]) -> tuple[dict, dict, tuple, str]:
    settings, hardware = {}, dict(HARDWARE_DEFAULTS)
    targets, area = DEFAULT_TARGETS, DEFAULT_AREA
    for key, value in raw.items():
        if not _check_key(key, options, None, errors):
            continue
        if key == "method":
            errors.append("method must be given in each [[grid]] table, not in [sweep]; "
                          f"got {value!r}")
        elif key == "targets":
            targets = _targets(value, errors)
        elif key == "area":
            if not isinstance(value, str) or ":" not in value:
                errors.append(f"area must be a provider 'module:function'; got {value!r}")
            else:
                area = value
        elif not _scalar_ok(value):
            errors.append(f"{key} in [sweep] must be one value (lists go in [[grid]] tables); "
                          f"got {value!r}")
        elif key in HARDWARE_RULES:
            try:
                hardware[key] = HARDWARE_RULES[key].check(key, value)
            except ValueError as exc:
                errors.append(str(exc))
        else:
            settings[key] = value
    return settings, hardware, targets, area


def _targets(value, errors: list[str]) -> tuple[str, ...]:
    from hw.synth.targets import get_target

    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        errors.append(f"targets must be a non-empty list of target names; got {value!r}")
        return DEFAULT_TARGETS
    for name in names:
        try:
            get_target(name)
        except ValueError as exc:
            errors.append(f"targets: {exc}")
    return tuple(dict.fromkeys(names))


def _table(raw, number: int, options: dict, errors: list[str]) -> dict[str, list]:
    if not isinstance(raw, dict):
        errors.append(f"[[grid]] {number} must be a table; got {raw!r}")
        return {}
    table = {}
    for key, value in raw.items():
        if not _check_key(key, options, number, errors):
            continue
        values = value if isinstance(value, list) else [value]
        if not values:
            errors.append(f"{key} in [[grid]] {number} must list at least one value; got []")
        elif not all(_scalar_ok(v) for v in values):
            errors.append(f"{key} in [[grid]] {number} must list numbers, strings or booleans; "
                          f"got {value!r}")
        else:
            table[key] = list(dict.fromkeys(values))
    if "method" not in raw:
        errors.append(f"[[grid]] {number} must give method; got keys {', '.join(raw) or 'none'}")
    return table


def _from_mapping(data: dict, source: str, extra_tables: list[dict] = ()) -> Spec:
    options = _eval_options()
    errors: list[str] = []
    unknown = sorted(set(data) - {"sweep", "grid"})
    for name in unknown:
        errors.append(f"spec tables must be [sweep] and [[grid]]; got {name!r}")
    raw_settings = data.get("sweep", {})
    if not isinstance(raw_settings, dict):
        errors.append(f"[sweep] must be a table; got {raw_settings!r}")
        raw_settings = {}
    settings, hardware, targets, area = _settings(raw_settings, options, errors)
    raw_tables = data.get("grid", [])
    if not isinstance(raw_tables, list):
        errors.append(f"grid must be an array of tables ([[grid]]); got {raw_tables!r}")
        raw_tables = []
    raw_tables = [*raw_tables, *extra_tables]
    if not raw_tables:
        errors.append(f"grid must have at least one table ([[grid]] or --grid); got none in {source}")
    tables = [_table(t, i, options, errors) for i, t in enumerate(raw_tables, 1)]
    if errors:
        raise SpecError(errors)
    return Spec(source=source, settings=settings, hardware=hardware, targets=targets, area=area,
                tables=tables)


def load_spec(path: str, *, grid: list[str] = (), targets: list[str] | None = None,
              area: str | None = None) -> Spec:
    """The spec in TOML file ``path`` (``"default"``: the packaged default spec), with
    ``--grid`` options as one more table and ``--targets`` / ``--area`` overriding."""
    file = DEFAULT_SPEC if path == "default" else path
    try:
        with open(file, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise SpecError([f"SPEC must be a TOML file or 'default'; got {path!r} (no such file)"]) from None
    except IsADirectoryError:
        raise SpecError([f"SPEC must be a TOML file or 'default'; got the folder {path!r}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([f"SPEC must be valid TOML; {path!r}: {exc}"]) from None
    return _overrides(_from_mapping(data, path, _grid_tables(grid)), targets, area)


def grid_spec(grid: list[str], *, targets: list[str] | None = None, area: str | None = None) -> Spec:
    """A spec of ``--grid KEY=V1,V2`` options alone: one table, the product of their values."""
    return _overrides(_from_mapping({}, "--grid", _grid_tables(grid)), targets, area)


def _overrides(spec: Spec, targets, area) -> Spec:
    errors: list[str] = []
    new_targets = spec.targets if targets is None else _targets(list(targets), errors)
    if area is not None and ":" not in area:
        errors.append(f"area must be a provider 'module:function'; got {area!r}")
    if errors:
        raise SpecError(errors)
    return Spec(source=spec.source, settings=spec.settings, hardware=spec.hardware,
                targets=new_targets, area=area or spec.area, tables=spec.tables)


def _grid_value(text: str):
    """A ``--grid`` value: an integer, true/false, or the text itself."""
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text, 10)
    except ValueError:
        return text


def _grid_tables(grid: list[str]) -> list[dict]:
    if not grid:
        return []
    table: dict[str, list] = {}
    errors = []
    for item in grid:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            errors.append(f"grid must be KEY=VALUE[,VALUE...]; got {item!r}")
            continue
        if key in table:
            errors.append(f"grid must give each key once; got {key!r} twice")
            continue
        table[key] = [_grid_value(v) for v in values.split(",")]
    if errors:
        raise SpecError(errors)
    return [table]


# ---------------------------------------------------------------- points

def _argv(options: dict[str, Any], actions: dict) -> list[str]:
    argv = []
    for key, value in options.items():
        if actions[key].nargs == 0:          # a flag such as --bit-true
            if value is True:
                argv.append(f"--{key}")
            elif value is not False:
                raise ValueError(f"{key} must be true or false; got {value!r}")
        else:
            argv += [f"--{key}", str(value)]
    return argv


def _applies(key: str, value, method: str) -> bool:
    """Whether eval takes option ``key`` with ``method`` (eval's own rule, sw.cli.check_applicable)."""
    from sw.cli import check_applicable

    args = eval_parser().parse_args([])
    setattr(args, _eval_options()[key].dest, value)
    try:
        check_applicable(args, method)
    except UsageError:
        return False
    return True


def _canonical(args, p) -> dict:
    """The configuration a point's result depends on, defaults filled (its key material)."""
    config = {k: v for k, v in sorted(vars(args).items()) if k not in _NOT_SWEPT}
    config["method"] = p.method
    config["arithmetic"] = p.arithmetic
    config.pop("bit_true", None)
    config["guard_bits"] = p.guard_bits if p.arithmetic == "bit-true" else None
    if p.config is not None:
        config.update(p.config.to_json())
    calib = getattr(p, "calib", None)
    for name in [k for k in config if k.startswith("calib_")]:
        config.pop(name)
    if calib is not None:
        config.update({f"calib_{k}": v for k, v in calib.to_json().items()})
        config["calib"] = config.get("calib") or "default"
    return config


def point_key(config: dict, hardware: dict, targets, area: str) -> str:
    """SHA-256 (first 16 hex digits) of everything a result row depends on."""
    material = {"schema": SCHEMA, "config": config, "hardware": hardware,
                "targets": list(targets), "area": area}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _describe(values: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())


def expand(spec: Spec) -> list[Point]:
    """The spec's points in spec order (tables in order, last key varying fastest), each parsed
    and planned by eval; duplicates (same key) kept once. Raises :class:`SpecError` with one
    line per bad point."""
    from sw.cli_eval import plan

    actions = _eval_options()
    parser = eval_parser()
    errors: list[str] = []
    points: list[Point] = []
    seen: set[str] = set()
    number = 0
    for t, table in enumerate(spec.tables, 1):
        keys = list(table)
        for combo in itertools.product(*(table[k] for k in keys)):
            number += 1
            given = dict(zip(keys, combo))
            where = f"point {number} ([[grid]] {t}: {_describe(given)})"
            method = given.get("method")
            hardware = dict(spec.hardware)
            options = {}
            for key, value in spec.settings.items():
                if key not in given and (not isinstance(method, str) or _applies(key, value, method)):
                    options[key] = value
            for key, value in given.items():
                if key in HARDWARE_RULES:
                    try:
                        hardware[key] = HARDWARE_RULES[key].check(key, value)
                    except ValueError as exc:
                        errors.append(f"{where}: {exc}")
                else:
                    options[key] = value
            for key in _PATHS:  # absolute, so every worker (a Ray node too) reads the same file
                if isinstance(options.get(key), str) and options[key] != "default":
                    options[key] = os.path.abspath(options[key])
            try:
                argv = _argv(options, actions)
                args = parser.parse_args(argv)
                p = plan(args)
            except ValueError as exc:
                errors.append(f"{where}: {str(exc).splitlines()[0]}")
                continue
            config = _canonical(args, p)
            hw = {k.replace("-", "_"): v for k, v in hardware.items()}
            key = point_key(config, hw, spec.targets, spec.area)
            if key in seen:
                continue
            seen.add(key)
            points.append(Point(index=len(points), table=t, argv=tuple(argv), config=config,
                                hardware=hw, key=key))
    if errors:
        raise SpecError(errors)
    return _labelled(points)


def check_with_models(points: list[Point]) -> None:
    """The checks that need the model, before anything runs (eval's own: tokens, ranks, calibration).

    Loads each model once (kept for in-process points); raises :class:`SpecError`
    with one line per bad point.
    """
    from sw.cli import check_calibration, device_of, select_layers
    from sw.cli_eval import data_ids, plan

    from sweep.job import loaded_model

    parser = eval_parser()
    errors = []
    checked_data: set = set()
    for point in points:
        try:
            args = parser.parse_args(list(point.argv))
            p = plan(args)
            model, tokenizer, _ = loaded_model(args, device_of(args.device))
            data = (args.model, args.data, args.seq_len, args.batch_size, args.max_windows)
            if data not in checked_data:
                data_ids(p, model, tokenizer)
                checked_data.add(data)
            if getattr(p.config, "quantized", False):  # QuantConfig (Int8Options has none)
                select_layers(model, p.config, args.layers)
            if p.calib is not None:
                check_calibration(model, tokenizer, p.calib_text, p.calib)
        except ValueError as exc:
            errors.append(f"point {point.index + 1} ({point.label}): {str(exc).splitlines()[0]}")
    if errors:
        raise SpecError(errors)


_PATHS = ("model", "data", "calib")
_LABEL_SKIP = {"method", "w_width", "a_width", "rank", "model", "data", "device"}


def _labelled(points: list[Point]) -> list[Point]:
    """Short labels: ``l2qer W4A8 r32`` plus whatever else varies between the points."""
    varying = set()
    for name in sorted({k for p in points for k in [*p.config, *p.hardware]}):
        values = {json.dumps({**p.config, **p.hardware}.get(name), sort_keys=True) for p in points}
        values.discard("null")  # not applicable to that point's method
        if len(values) > 1 and name not in _LABEL_SKIP:
            varying.add(name)
    out = []
    for p in points:
        c = p.config
        label = c["method"]
        if c.get("w_width") is not None:
            label += f" W{c['w_width']}A{c['a_width']}"
        if c.get("rank") is not None and c["method"] in ("lqer", "l2qer"):
            label += f" r{c['rank']}"
        both = {**c, **p.hardware}
        extras = [f"{k}={both[k]}" for k in sorted(varying) if both.get(k) is not None
                  and not (k == "rank" and c["method"] not in ("lqer", "l2qer"))]
        if extras:
            label += " " + " ".join(extras)
        out.append(Point(index=p.index, table=p.table, argv=p.argv, config=p.config,
                         hardware=p.hardware, key=p.key, label=label))
    return out
