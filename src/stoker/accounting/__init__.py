"""Cost per job, team, tier, model and day; utilization; waste findings — computed by the pure
functions in ``stoker.core.accounting`` and ``stoker.core.waste`` over the store's records."""
