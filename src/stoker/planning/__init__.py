"""Planning a pool with the simulator: its set-up from a Stoker config, what-if sweeps, and the
tables and charts it reports (the simulator itself is :mod:`stoker.sim`)."""
