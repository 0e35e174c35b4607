"""Background loops: outbox sweep and wake-up, drift sweep, periodic jobs, recovery."""
