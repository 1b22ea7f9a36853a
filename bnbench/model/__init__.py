"""Layer 3, model: builds a Keras `Sequential` from a model spec (the one norm-insertion rule)
and the fused batch-norm layer. Keras is imported inside functions, never at package import.
"""
