"""What every design adapter shares: field specs, input checks, the registry, random operands.

An :class:`Adapter` ties a registered design (:mod:`hw.designs`) to its bit-exact
reference (:mod:`sw.mxint`, :mod:`sw.blockmath`, :mod:`sw.lqer_reference`) for the
cocotb and Amaranth benches and ``lqer-hw sim``. It knows

- the user-facing ``.npz`` fields of the design's input and output streams
  (:class:`FieldSpec`, documented in ``lqer-hw sim --help``) and their payload keys;
- the shape and range of each input field on a given component (:meth:`Adapter.input_bounds`),
  which :meth:`Adapter.validate` checks, one-line ``ValueError`` per problem;
- the input stream the component takes (:meth:`Adapter.input_stream`), the reference
  outputs and random vectors with edge cases.

One module per design (``sim/adapters/<design>.py``) subclasses :class:`Adapter` and
calls :func:`register_adapter` once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sim.stream import InputStream
from sw.mxint import MXQuantized

__all__ = ["Adapter", "FieldSpec", "Bounds", "CheckedInputs", "ADAPTERS", "register_adapter",
           "get_adapter", "random_mantissas", "random_exponents", "mx_blocks", "edge_blocks"]


@dataclass(frozen=True)
class FieldSpec:
    """One field of a design's ``.npz`` file: ``name`` in the file, ``payload`` the stream
    payload key it maps to (:class:`sim.codec.PayloadCodec` keys; empty when the adapter
    lays the stream out itself), ``doc`` its shape and meaning for ``--help``."""

    name: str
    payload: str
    doc: str


class Bounds(NamedTuple):
    """Accepted shape and inclusive value range of one input field.

    A ``shape`` entry is an ``int`` (a fixed size: block, lanes, rows of a weight matrix)
    or a ``str`` naming a count that fields share and that the file sets (``"N"``
    vectors, ``"T"`` tokens); the first field that has the count fixes it.
    """

    shape: tuple[int | str, ...]
    lo: int
    hi: int


class CheckedInputs(dict):
    """Input fields as :meth:`Adapter.validate` returns them: int64 arrays of checked
    shape and range, for ``design``; ``counts`` maps each count name to its value."""

    def __init__(self, design: str, arrays: dict[str, np.ndarray], counts: dict[str, int]):
        super().__init__(arrays)
        self.design = design
        self.counts = dict(counts)


def _shape_text(shape: tuple, counts: dict[str, int]) -> str:
    dims = [str(d) for d in shape]
    text = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
    named = [d for d in dict.fromkeys(shape) if isinstance(d, str) and d in counts]
    if named:
        text += " with " + ", ".join(f"{d} = {counts[d]}" for d in named)
    return text


class Adapter:
    """Base adapter. A subclass sets :attr:`design`, :attr:`inputs`, :attr:`outputs`
    (and :attr:`counts` when its count is not ``N`` vectors) and implements
    :meth:`input_bounds`, :meth:`reference` and :meth:`random_inputs`."""

    #: registered design name (:func:`hw.designs.get_design`)
    design: str = ""
    #: input fields, in the order of ``--help`` and of the "fields:" error list
    inputs: tuple[FieldSpec, ...] = ()
    #: output fields (see :meth:`output_fields` for designs whose outputs vary)
    outputs: tuple[FieldSpec, ...] = ()
    #: count name -> noun, for the "at least one" error
    counts: dict[str, str] = {"N": "vector"}

    # -- per design ---------------------------------------------------------------------
    def input_bounds(self, dut) -> dict[str, Bounds]:
        """Field name -> :class:`Bounds` accepted by component ``dut``."""
        raise NotImplementedError

    def input_fields(self, dut) -> tuple[FieldSpec, ...]:
        """The input fields ``dut`` takes: those of :attr:`inputs` that
        :meth:`input_bounds` bounds (a field may exist only for some parameters)."""
        bounds = self.input_bounds(dut)
        return tuple(s for s in self.inputs if s.name in bounds)

    def output_fields(self, dut) -> tuple[FieldSpec, ...]:
        """The output fields ``dut`` produces (default :attr:`outputs`)."""
        return self.outputs

    def reference(self, dut, inputs: CheckedInputs) -> dict[str, np.ndarray]:
        """Bit-exact expected outputs (output field name -> int64 array) of ``inputs``."""
        raise NotImplementedError

    def random_inputs(self, dut, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` random vectors (or tokens) for ``dut``, edge cases first, from ``rng``."""
        raise NotImplementedError

    def output_count(self, dut, inputs: CheckedInputs) -> int:
        """Output items ``inputs`` produce (default: one per vector)."""
        return len(next(iter(inputs.values())))

    def extra_checks(self, dut, inputs: dict[str, np.ndarray]) -> None:
        """Constraints beyond shapes and ranges, on the checked int64 fields; raise a
        one-line ``ValueError``."""

    def input_stream(self, dut, inputs: CheckedInputs) -> InputStream:
        """The input items of a run (default: flat, one item per vector, fields mapped to
        payload keys by :attr:`inputs`)."""
        return InputStream(self.to_payload(self.input_fields(dut), inputs))

    # -- shared -------------------------------------------------------------------------
    def validate(self, dut, inputs: dict) -> CheckedInputs:
        """Checked int64 copies of the input fields of ``dut``.

        Raises ``ValueError`` (one line) naming the first field that is missing, not an
        integer array, of the wrong shape (:class:`Bounds`) or out of range; when a count
        is 0; or from :meth:`extra_checks`. Extra fields are ignored.
        """
        bounds = self.input_bounds(dut)
        names = [s.name for s in self.inputs if s.name in bounds]
        out: dict[str, np.ndarray] = {}
        counts: dict[str, int] = {}
        for name in names:
            if name not in inputs:
                raise ValueError(f"inputs must contain field {name!r} "
                                 f"(fields: {', '.join(names)})")
            a = np.asarray(inputs[name])
            if a.dtype == np.bool_:
                a = a.astype(np.int64)
            if not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"{name} must be an integer array; got dtype {a.dtype}")
            shape, lo, hi = bounds[name]
            for axis, dim in enumerate(shape):
                if isinstance(dim, str) and dim not in counts and axis < a.ndim:
                    counts[dim] = a.shape[axis]
            want = tuple(counts.get(d, -1) if isinstance(d, str) else d for d in shape)
            if a.shape != want:
                raise ValueError(f"{name} must have shape {_shape_text(shape, counts)}; "
                                 f"got {a.shape}")
            if a.size and (a.min() < lo or a.max() > hi):
                bad = a.flat[int(np.argmax((a < lo) | (a > hi)))]
                raise ValueError(f"{name} must be in {lo}..{hi}; got {int(bad)}")
            out[name] = a.astype(np.int64)
        for dim, noun in self.counts.items():
            if counts.get(dim, 0) < 1:
                raise ValueError(f"inputs must hold at least one {noun}; "
                                 f"got {dim} = {counts.get(dim, 0)}")
        self.extra_checks(dut, out)
        return CheckedInputs(self.design, out, counts)

    def to_payload(self, specs: tuple[FieldSpec, ...], arrays: dict) -> dict[str, np.ndarray]:
        """Arrays keyed by payload key instead of field name."""
        return {s.payload: arrays[s.name] for s in specs}

    def from_payload(self, specs: tuple[FieldSpec, ...], arrays: dict) -> dict[str, np.ndarray]:
        """Arrays keyed by field name instead of payload key."""
        return {s.name: arrays[s.payload] for s in specs}


# --- the registry ----------------------------------------------------------------------

ADAPTERS: dict[str, Adapter] = {}


def register_adapter(adapter: Adapter) -> Adapter:
    """Register ``adapter`` under ``adapter.design``; ``ValueError`` when that design
    already has one (each design is registered once)."""
    if adapter.design in ADAPTERS:
        raise ValueError(f"design {adapter.design!r} already has an adapter")
    ADAPTERS[adapter.design] = adapter
    return adapter


def get_adapter(design: str) -> Adapter:
    """The adapter of ``design``; ``ValueError`` listing the simulated designs otherwise."""
    if design not in ADAPTERS:
        raise ValueError(f"design must be one of {', '.join(ADAPTERS)} for simulation; "
                         f"got {design!r}")
    return ADAPTERS[design]


# --- random MXINT operands ---------------------------------------------------------------

def random_mantissas(rng: np.random.Generator, shape: tuple, width: int) -> np.ndarray:
    """Random ``width``-bit mantissas ``shape`` (last axis: a block), symmetric about zero,
    each block at a random magnitude scale, about 10% zeros; ``-q .. q`` with
    ``q = 2**(width-1) - 1`` (never the unused code ``-2**(width-1)``)."""
    qmax = 2 ** (width - 1) - 1
    mag = rng.integers(0, qmax + 1, size=shape)
    mag >>= rng.integers(0, width, size=shape[:-1] + (1,))  # whole-block scale
    sign = np.where(rng.random(shape) < 0.5, -1, 1)
    return sign * mag * (rng.random(shape) > 0.1)


def random_exponents(rng: np.random.Generator, shape: tuple, fmt) -> np.ndarray:
    """Random shared exponents in ``fmt.exponent_range``, 5% at each extreme."""
    lo, hi = fmt.exponent_range
    e = rng.integers(lo, hi + 1, size=shape)
    edge = rng.random(shape)
    return np.where(edge < 0.05, lo, np.where(edge > 0.95, hi, e))


def mx_blocks(mantissas: np.ndarray, exponents: np.ndarray, fmt) -> MXQuantized:
    """An :class:`sw.mxint.MXQuantized` of blocks ``mantissas`` ``(..., block)`` with one
    exponent each, ``exponents`` ``(...)``, in format ``fmt``."""
    return MXQuantized(mantissas=mantissas, exponents=exponents[..., None], format=fmt,
                       axis=mantissas.ndim - 1)


def edge_blocks(n: int, fmt) -> tuple[np.ndarray, np.ndarray]:
    """``n`` edge-case blocks ``(n, block)`` and exponents ``(n,)``: zero, all +max, all
    -max, alternating signs, one element at max, all ones; cycling through the smallest,
    largest and zero exponent."""
    q, b = fmt.mantissa_max, fmt.block
    lo, hi = fmt.exponent_range
    blocks = [np.zeros(b), np.full(b, q), np.full(b, -q), np.resize([q, -q], b),
              np.eye(1, b, b - 1)[0] * q, np.ones(b)]
    m = np.array([blocks[k % len(blocks)] for k in range(n)], dtype=np.int64).reshape(n, b)
    e = np.array([[lo, hi, 0][k % 3] for k in range(n)], dtype=np.int64)
    return m, e
