"""The GIL-free native loops (Cython and C), the C rulebook, and the glue that runs them."""
