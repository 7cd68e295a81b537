"""The pool: the runner processes behind the control plane."""
