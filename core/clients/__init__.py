"""Outbound clients: Discord and Google Calendar adapters with rate limiting, lanes,
a circuit breaker per service and Discord's invalid-request guard.

Start with ``core.clients.factory.open_clients``; syncers depend on ``core.clients.ports``.
"""
