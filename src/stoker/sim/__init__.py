"""Plan before you buy: a discrete-event simulation (SimPy) of the queue and the pool under a
job trace, on the same core policies as the live service."""
