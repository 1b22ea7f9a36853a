"""Opt-in diagnostics of what Batch Normalization does inside a network, on a fixed probe batch.

One module per diagnostic (`activation_percentiles`, `moving_statistics`,
`train_inference_gap`, `gradient_norms`, `variance_shift`), each a `probe.Diagnostic`; the
`recorder` lists them in one ordered tuple and runs the enabled ones. A new diagnostic is one
module here, its file in `bnbench.results.diagnostics` and its switch in
`bnbench.config.diagnostics`.
"""

from bnbench.train.diagnostics.recorder import DIAGNOSTICS, DiagnosticsRecorder, make_recorder

__all__ = ["DIAGNOSTICS", "DiagnosticsRecorder", "make_recorder"]
