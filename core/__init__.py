"""groupsync: keeps external services in step with group membership."""
