"""Yosys resource reports (``lqer-hw synth``) and nextpnr timing (``lqer-hw pnr``).

:mod:`~hw.synth.targets` defines the flows, :mod:`~hw.synth.flow` runs jobs
(parallel, cached), :mod:`~hw.synth.report` writes tables and plots,
:mod:`~hw.synth.defaults` names the default design set.
"""
