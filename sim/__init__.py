"""Verification: cocotb and Amaranth benches of the designs against the bit-exact reference,
and ``lqer-hw sim``."""
