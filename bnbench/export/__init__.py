"""Layer 6, export: a results tree in the formats of the tools researchers already use.

TensorBoard event files, an MLflow tracking store, one self-contained HTML report and a tidy
`histories.csv` for pandas. Every exporter reads only the results tree (through
`bnbench.results` and `bnbench.analysis`) and never trains: it can be re-run at any time and
replaces its previous output. The optional libraries (TensorBoard, MLflow) are imported inside
the exporter that needs them; a missing one is a `SpecError` naming the pip command.
"""
