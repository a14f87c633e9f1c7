"""IEEE-754 floating-point units (binary16 / binary32) as stream components.

One module per unit; :mod:`hw.fp.designs` registers them in :mod:`hw.designs`.
Their bit-exact contract is :mod:`sw.ieee`.
"""
