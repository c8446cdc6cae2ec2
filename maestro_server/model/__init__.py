"""The validated workflow model: frozen dataclasses, no I/O."""
