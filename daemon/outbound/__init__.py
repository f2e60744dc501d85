"""Mail leaving the shop: templates rendered, messages composed, queued in the outbox, sent by SMTP.

A message is queued in the same transaction as the state change that causes it.
"""
