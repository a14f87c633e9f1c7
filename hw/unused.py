"""Amaranth's "created but never used" warning, handled in one place.

Amaranth warns (``UnusedElaboratable``) when an elaboratable is garbage-collected
without having been elaborated. Three cases in this project are not mistakes, and
each has one helper here, so no other module touches Amaranth's private
``_MustUse__*`` attributes (documented mechanism: ``amaranth._unused.MustUse``;
the per-file ``# amaranth: UnusedElaboratable=no`` comment would silence user files
too broadly):

- :func:`rejectable`: a component whose ``__init__`` rejects its parameters
  (``ValueError`` / ``TypeError``) was never a usable object;
- :func:`owned`: parts built in a component's ``__init__`` and elaborated by it
  (the owner answers for their use);
- :func:`inspected`: a component built only to read its published facts
  (latency, widths), never meant to become a netlist.
"""

from __future__ import annotations

import contextlib

__all__ = ["rejectable", "owned", "inspected"]


@contextlib.contextmanager
def rejectable(component):
    """Use around a component's parameter checks in ``__init__``::

        with rejectable(self):
            ...validate, build parts...
        super().__init__(signature)
    """
    component._MustUse__silence = True
    yield component
    component._MustUse__silence = False


def owned(*parts) -> None:
    """Mark ``parts`` as accounted for by the component that built them."""
    for part in parts:
        part._MustUse__silence = True


def inspected(component):
    """Mark ``component`` as used (read for its properties only); returns it."""
    component._MustUse__used = True
    return component
