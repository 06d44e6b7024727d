"""Shared kernel: settings base, the queue contract, ports and their adapters, token verification.

Only what two or more services use lives here. Nothing in this package imports a service.
"""
