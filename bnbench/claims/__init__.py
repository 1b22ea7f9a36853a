"""Common claims about batch normalization: declared, and judged from their results trees.

`catalog/` holds the claims, one module (`Claim`: metadata, verdict rule, figure) and one
ablation YAML each, listed by `catalog.IDS` and loaded by `registry.CLAIMS`; `plan` loads a
claim's ablation (full or quick budget) and checks where it will run; `report` applies each
claim's rule to its results tree and writes claims.md / claims.json with a figure per claim.
Running the ablations is `bnbench claims run` (`bnbench.cli.claims`): nothing here trains.
"""
