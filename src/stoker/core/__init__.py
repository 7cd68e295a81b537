"""Plain data and pure policies. No I/O, no clock reads, no imports from the rest of stoker."""
