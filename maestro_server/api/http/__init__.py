"""The HTTP face of the server: the Orchestrator over Connect, health probes, the console."""
