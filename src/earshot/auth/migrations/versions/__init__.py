"""Revisions of the auth database, applied in order by `earshot migrate`."""
