"""Layer 1, configuration: the typed run and ablation schemas, loading, registries, run ids and
the backend policy.

Pure data and validation: nothing here imports Keras, TensorFlow, JAX, or any other layer of
bnbench (only `bnbench.errors`).
"""
