"""Layer 6, demos: small self-contained experiments that train nothing through the runner.

The loss-landscape demo (`landscape`) draws what BN does to the conditioning of a two-scale
problem; a claim (`scaling_landscape`) reuses its numbers. Demos may read data and draw with the
analysis layer's figure helpers; they never import Keras, TensorFlow or JAX.
"""
