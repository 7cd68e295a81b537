"""Model backends behind one interface (:class:`stoker.runner.backends.protocol.Backend`)."""
