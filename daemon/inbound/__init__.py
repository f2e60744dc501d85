"""Mail coming in: the IMAP mailbox, the intake, mailbox locks, mbox import.

Raw mail is committed to the database before it leaves the inbox.
"""
