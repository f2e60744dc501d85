"""What a message does to a ticket: routing, threading, agents' commands and replies, lifecycle, bounces.

Discounts, satisfaction and business hours live here too: they are decisions about tickets.
"""
