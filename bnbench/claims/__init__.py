"""Common claims about batch normalization, each tested by a shipped ablation and a verdict rule.

`registry.CLAIMS` lists them; `plan` runs their ablations into `OUT/<id>/`; `report` applies
each claim's rule to its results tree and writes claims.md / claims.json with a figure per claim.
"""
