"""The runner process: lease a batch, run it, report, heartbeat, drain."""
