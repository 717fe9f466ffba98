"""Cython bindings over the C kernels in ``_native/``: the hot paths of flinkcore."""
