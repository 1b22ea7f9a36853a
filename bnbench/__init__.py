"""bnbench: measure what Batch Normalization does.

Importing this package must stay cheap: nothing here imports TensorFlow, JAX or Keras.
"""

__version__ = "0.1.0"
