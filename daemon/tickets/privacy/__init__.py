"""Customers' personal data (GDPR arts. 15, 17, 5(1)(e)): handed over, erased, kept only so long.

holdings: what the database holds about one address. erasure: replacing it by a pseudonym and
placeholders. export: the zip handed to the person. retention: the shop's time limits. The IMAP
copies are the inbound layer's job (inbound/folder_cleanup.py); the CLI and the daily sweep
orchestrate both.
"""
