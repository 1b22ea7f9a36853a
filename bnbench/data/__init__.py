"""Layer 3, data: the dataset registry, readers of the formats Keras caches, synthetic sets.

Returns numpy arrays; Keras is imported only inside the loaders that download through it.
"""
