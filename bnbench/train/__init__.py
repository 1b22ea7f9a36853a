"""Layer 4, training: backend activation, the pure schedule, preparation, the loop, diagnostics.

`prepare(spec)` is the one setup path shared by `bnbench validate` and `bnbench train`.
"""
