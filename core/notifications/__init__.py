"""Timers: the process-wide APScheduler and the retry jobs it fires (DESIGN §2, §6a)."""
