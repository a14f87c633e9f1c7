"""How many LLM.int8() outlier columns each layer has: from a profile or one count.

The profile is the JSON ``lqer-hw profile`` writes (``sw.outliers``). The cost model
reads only this part of it (other keys are ignored)::

    {"format": "lqer-hw-outliers", "version": 1,
     "threshold": 6.0, "group": null | T,
     "layers": {"<module name>": {"d_in": 4096,
                                  "outlier_columns_per_group": {"mean": 1.2, "p50": 1,
                                                                "p99": 3, "max": 3}}, ...}}

Per layer, the number of outlier columns in a detection group (a group of ``T`` tokens
or a whole batch: the hardware treats a group as one pass). A profile belongs to a
model when it names exactly the model's linear layers with the same ``d_in``.
``--outlier-columns N`` stands for a profile in which every layer has ``N`` outlier
columns in every group (the LQER authors' LLaMA-7B figure: 353 of 4096).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

__all__ = ["OutlierCounts", "OutlierProfile", "read_profile", "fixed_columns", "FORMAT",
           "VERSION", "SIZINGS"]

FORMAT = "lqer-hw-outliers"
VERSION = 1
SIZINGS = ("mean", "p50", "p99", "max")


@dataclass(frozen=True)
class OutlierCounts:
    """Outlier columns per detection group of one layer."""

    mean: float
    p50: int
    p99: int
    max: int

    def at(self, statistic: str) -> float:
        return getattr(self, statistic)


@dataclass(frozen=True)
class OutlierProfile:
    """Per-layer outlier counts, ``source`` saying where they came from."""

    source: str
    layers: dict[str, OutlierCounts]
    threshold: float | None = None

    def of(self, layer_name: str) -> OutlierCounts:
        return self.layers[layer_name]


def fixed_columns(n: int, shapes) -> OutlierProfile:
    """Every layer of ``shapes`` with ``n`` outlier columns; ``ValueError`` when ``n``
    exceeds a layer's ``d_in``."""
    narrowest = min(shapes.layers, key=lambda layer: layer.d_in)
    if n > narrowest.d_in:
        raise ValueError(f"outlier-columns must be at most d_in of every layer ({narrowest.d_in} "
                         f"at {narrowest.name}); got {n}")
    counts = OutlierCounts(float(n), n, n, n)
    return OutlierProfile(f"--outlier-columns {n}", {layer.name: counts for layer in shapes.layers})


def _count(stats: dict, key: str, name: str, path: str) -> float:
    value = stats.get(key) if isinstance(stats, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"outliers must give outlier_columns_per_group.{key} >= 0 for every "
                         f"layer; got {value!r} for {name} in {path}")
    return value


def read_profile(path: str, shapes) -> OutlierProfile:
    """The profile at ``path`` for the model ``shapes`` (:class:`hw.cost.shapes.ModelShapes`).

    ``ValueError`` (one line) when the file is unreadable, not a profile of this format,
    or a profile of another model (other layer names or widths).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ValueError(f"outliers must name a readable profile JSON; got {path!r} "
                         f"({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"outliers must be a JSON profile (lqer-hw profile); got {path!r}, "
                         "which is not JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"outliers must be a profile of format {FORMAT!r} (lqer-hw profile); "
                         f"got {got!r} in {path}")
    if data.get("version") != VERSION:
        raise ValueError(f"outliers must be a profile of version {VERSION}; got "
                         f"{data.get('version')!r} in {path}")
    layers = data.get("layers")
    if not isinstance(layers, dict) or not layers:
        raise ValueError(f"outliers must list the profiled layers; got none in {path}")
    wanted = {layer.name: layer for layer in shapes.layers}
    missing = [name for name in wanted if name not in layers]
    extra = [name for name in layers if name not in wanted]
    if missing or extra:
        what = f"missing {missing[0]}" if missing else f"has {extra[0]}, which the model lacks"
        raise ValueError(f"outliers must be a profile of the model {shapes.name} "
                         f"(the same linear layers); got {path}, which {what}")
    counts = {}
    for name, layer in wanted.items():
        record = layers[name]
        d_in = record.get("d_in") if isinstance(record, dict) else None
        if d_in != layer.d_in:
            raise ValueError(f"outliers must be a profile of the model {shapes.name}; got "
                             f"{path}, where {name} has d_in {d_in!r}, not {layer.d_in}")
        stats = record.get("outlier_columns_per_group")
        values = {k: _count(stats, k, name, path) for k in SIZINGS}
        if values["max"] > layer.d_in:
            raise ValueError(f"outliers must count at most d_in columns per group; got "
                             f"{values['max']} for {name} in {path}")
        counts[name] = OutlierCounts(float(values["mean"]), int(values["p50"]),
                                     int(values["p99"]), int(values["max"]))
    threshold = data.get("threshold")
    return OutlierProfile(str(path), counts,
                          float(threshold) if isinstance(threshold, (int, float)) else None)
