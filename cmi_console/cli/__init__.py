"""The headless CLI: parse input, call services, render results."""
