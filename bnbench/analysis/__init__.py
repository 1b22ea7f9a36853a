"""Layer 5, analysis: statistics, tables and figures.

Reads only the results tree (through `bnbench.results`); never imports training, model code,
Keras, TensorFlow or JAX, so tables and figures can be re-rendered without training.
"""
