"""Test helpers: real mail servers, a throwaway PostgreSQL, the daemon harness, corpus loaders and figures.

Kept apart from the tests so that a test file holds only tests; bench/ and scripts/demo.py borrow
the mail servers from here.
"""
