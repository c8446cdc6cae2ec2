"""Where workflow definitions, executions and their event logs live (a Protocol and its stores)."""
