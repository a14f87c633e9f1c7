"""Area-vs-perplexity sweeps: ``lqer-hw sweep`` (docs/sweep.md).

A sweep is a list of points, each one ``lqer-hw eval`` configuration (method,
widths, rank, block, ...) plus the hardware settings its area depends on
(MACs per cycle, targets). Each point is an independent job -- quantize,
evaluate the perplexity, ask the cost model for the area per target -- whose
result is one JSON line of ``results.jsonl``, keyed by a hash of the point's
configuration, so a rerun skips what is done.

Modules, one job each:

* :mod:`sweep.spec` -- the sweep spec (TOML or ``--grid``), expanded into
  points validated by ``lqer-hw eval``'s own parser and checks;
* :mod:`sweep.area` -- the area provider interface and its placeholder;
* :mod:`sweep.job` -- one point: quantize, evaluate, cost -> one result row;
* :mod:`sweep.journal` -- ``results.jsonl``: locked atomic appends, resume;
* :mod:`sweep.runner` -- the engines: in-process, ``-j N`` processes, Ray;
* :mod:`sweep.pareto` -- the Pareto frontier;
* :mod:`sweep.outputs` -- ``results.csv``, ``pareto.png``, ``report.md``;
* :mod:`sweep.cli` -- the command.

Layering: ``sweep`` imports ``sw`` (emulation, perplexity), ``hw`` (target
names) and the cost model; nothing imports ``sweep`` (docs/design.md,
Layers and rooms).
"""
