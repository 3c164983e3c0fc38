"""Validation: the checks a policy's suites name, and the runner that executes them."""
