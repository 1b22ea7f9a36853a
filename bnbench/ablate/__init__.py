"""Layer 5, ablations: running expanded grids through executors, resume, leases, progress.

A run is the same `bnbench.train.loop.train` wherever it runs; this layer only decides where
and when.
"""
