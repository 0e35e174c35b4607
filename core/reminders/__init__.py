"""The reminder feature: plan, delivery rows, policy, the sync, delivery, status."""
