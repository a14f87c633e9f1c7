"""The cost model: the area, memory and cycles of whole models' linear layers per method,
composed from synthesised parts at iso-throughput (docs/cost.md).

Modules, one job each:

- :mod:`hw.cost.shapes`: layer shapes from a Hugging Face ``config.json`` or a built-in set;
- :mod:`hw.cost.memory`: block-RAM geometry per target, bits to block RAMs;
- :mod:`hw.cost.parts`: the parts (synthesised designs, proxies, estimates) and their figures;
- :mod:`hw.cost.methods`: per method, the part list, memories, schedule and traffic (data);
- :mod:`hw.cost.glue`: the control and buffer logic around the parts, fitted from syntheses
  of the whole datapath at small sizes;
- :mod:`hw.cost.outliers`: the LLM.int8() outlier profile (``lqer-hw profile`` output);
- :mod:`hw.cost.model`: the composition, per layer, method and target;
- :mod:`hw.cost.report`: JSON, CSV, Markdown and the bar chart;
- :mod:`hw.cost.cli`: ``lqer-hw cost``;
- :mod:`hw.cost.provider`: :func:`area`, the area provider of ``lqer-hw sweep``
  (``hw.cost:area``).

Nothing here imports torch.
"""

from hw.cost.provider import area

__all__ = ["area"]
