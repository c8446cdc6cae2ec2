"""Reading workflow definitions: YAML text → validated `Workflow`, or every problem at once."""

from maestro_server.definition.parser import load_workflow, load_workflow_file

__all__ = ["load_workflow", "load_workflow_file"]
