"""One process: the hand-off to a daemon when no groupsync runtime runs here."""
