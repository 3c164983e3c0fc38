"""Pure logic: no database, no UI. Safe to import from anywhere."""
