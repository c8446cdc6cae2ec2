"""Reads of step outputs checked against the response messages the steps return.

`.subscription.plan_name` in a later step, a compensation or the workflow's output must name a
field of the response of the step whose output `subscription` is (a gRPC step with a schema);
so must `.steps.<id>.output.…`. Responses carry every field (MessageToDict prints them all), so
a name that is not a field is a typo whatever the data.
"""

from __future__ import annotations

from maestro_server.definition.calls import CallCheck, template_read_position


def check_references(check: CallCheck) -> None:
    """Record a diagnostic for every read of an output field that its response lacks."""
    for site in check.sites:
        analysis = check.analyses.get(id(site.template))
        if analysis is None:
            continue
        reported: set[tuple[str, tuple[str | int, ...]]] = set()
        for read in analysis.reads:
            found = check.response_slot(read)
            if found is None or found[0] is not None or (read.root, read.keys) in reported:
                continue
            reported.add((read.root, read.keys))
            shown = (
                "."
                + read.root
                + "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in read.keys)
            )
            step = read.keys[0] if read.root == "steps" else _producer(check, read.root)
            message = f"template reads {shown}, which step '{step}' does not return: {found[1]}"
            location = template_read_position(check.reader, site, read)
            check.reader.error_at(location, site.path, "unknown-field", message)


def _producer(check: CallCheck, output: str) -> str:
    return next(step.id for step, _ in check.steps if step.output == output)
