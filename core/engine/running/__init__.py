"""Running one key: claim, call, record (fenced), back off, park, pause, keep history."""
