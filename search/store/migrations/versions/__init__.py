"""Revisions of the dse tables, oldest first."""
