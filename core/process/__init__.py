"""One process: the slot that holds what it runs (``slot``), and the hand-off to a daemon
when no groupsync runtime runs here (``handoff``)."""
