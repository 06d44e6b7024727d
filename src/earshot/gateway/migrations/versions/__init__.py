"""Revisions of the jobs database."""
