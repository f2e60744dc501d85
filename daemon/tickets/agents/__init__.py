"""Agents working from their mail client: the #commands and the replies relayed to customers."""
