"""The `earshot` command: `serve`, `up`, `migrate` and `user` for operators.

The only package allowed to import every service: it wires settings to each service's `run`/`prepare`.
"""
