"""Layer 2, results: the run-directory contract, the results-tree reader, environment records.

The one owner of what a run directory holds (`rundir`). Imports only `bnbench.config` and
`bnbench.errors`; never Keras, training or analysis code.
"""
