"""The `maestro` command line."""
