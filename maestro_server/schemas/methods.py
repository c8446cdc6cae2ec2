"""Finding a workflow's gRPC method in a service's schema: full names, or unique short ones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from google.protobuf import descriptor, descriptor_pool

from maestro_server.schemas.descriptors import SchemaError


class MethodNotFoundError(SchemaError):
    """No method, or more than one, answers to the name."""


def services_in(
    pool: descriptor_pool.DescriptorPool, file_names: Iterable[str]
) -> list[descriptor.ServiceDescriptor]:
    """Every service the named files of the pool define."""
    return [
        service
        for name in file_names
        for service in pool.FindFileByName(name).services_by_name.values()
    ]


def find_method(
    pool: descriptor_pool.DescriptorPool,
    services: Sequence[descriptor.ServiceDescriptor],
    name: str,
    service: str | None = None,
) -> descriptor.MethodDescriptor:
    """The method `service/name`, or the only method called `name` among `services`."""
    if service is not None:
        try:
            return pool.FindMethodByName(f"{service}.{name}")
        except KeyError:
            known = ", ".join(sorted(s.full_name for s in services)) or "none"
            raise MethodNotFoundError(f"no method '{service}/{name}' (services: {known})") from None
    matches = [s.methods_by_name[name] for s in services if name in s.methods_by_name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        names = sorted(f"{s.full_name}/{m}" for s in services for m in s.methods_by_name)
        raise MethodNotFoundError(f"no method '{name}' (methods: {', '.join(names) or 'none'})")
    candidates = ", ".join(sorted(f"{m.containing_service.full_name}/{m.name}" for m in matches))
    raise MethodNotFoundError(f"method name '{name}' is ambiguous; write one of: {candidates}")
