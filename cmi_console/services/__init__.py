"""The only writers. Each public call is one transaction with its audit entries."""
