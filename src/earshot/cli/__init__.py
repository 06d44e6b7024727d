"""The `earshot` command: `serve`, `up`, `migrate` and `user` for operators.

The only package that imports every service: it wires settings to each service's `run`/`prepare`.
"""
