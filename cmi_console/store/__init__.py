"""Persistence: tables, engine, migrations, the artifact store and the workspace."""
