"""The shop's own platform: order look-up and coupons, one client per platform.

Everything the rest of the daemon needs is in `model` (the protocol and the frozen results) and
`factory.make_platform`. A client never retries and never waits longer than its time-out: callers
decide what a failure means (a notification goes out saying the shop did not answer; a closing
waits). Secrets are held by the clients and never appear in a log line or an exception message.
May import only daemon.config and daemon.mail.
"""
