"""The schemas of a workflow's gRPC services, read without calling them.

From a service's `descriptor_set`, its `protos` (compiled here, so a file that does not compile
is an error of the workflow, located in the .proto file), or descriptors fetched by server
reflection and handed in by the caller (`maestro validate --reflect`). Services with none are
not checked.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from yaml.nodes import Node

from maestro_server.definition.reader import Reader, find_node
from maestro_server.model.workflow import Service, ServiceType
from maestro_server.schemas.descriptors import (
    FileProtos,
    ProtoCompileError,
    SchemaError,
    build_pool,
    compile_protos,
    from_descriptor_set,
)
from maestro_server.schemas.methods import services_in

_COMPILED: OrderedDict[str, bytes] = OrderedDict()
_COMPILED_KEPT = 64
_COMPILED_LOCK = threading.Lock()  # the server parses workflows in worker threads


@dataclass(frozen=True, slots=True)
class ServiceSchema:
    """A service's descriptor pool and the gRPC services its files define."""

    pool: descriptor_pool.DescriptorPool
    services: Sequence[descriptor.ServiceDescriptor]


def service_schemas(
    reader: Reader,
    root: Node,
    services: Mapping[str, Service],
    reflected: Mapping[str, FileProtos],
) -> dict[str, ServiceSchema]:
    """The schema of every gRPC service that has one; problems are recorded in `reader`."""
    schemas: dict[str, ServiceSchema] = {}
    for name, service in services.items():
        where = ["services", name]
        if service.descriptor_set is not None:
            where.append("descriptor_set")
        elif service.protos:
            where.append("protos")
        try:
            schema = schema_of(service, reflected.get(name))
        except ProtoCompileError as exc:
            _compile_errors(reader, root, name, service, exc)
            continue
        except SchemaError as exc:
            node = find_node(root, where)
            reader.error(node, ".".join(where), "schema-error", f"service '{name}': {exc}")
            continue
        if schema is not None:
            schemas[name] = schema
    return schemas


def schema_of(service: Service, reflected: FileProtos | None = None) -> ServiceSchema | None:
    """A gRPC service's schema from its files (or `reflected`); None when it has none.

    Raises SchemaError (ProtoCompileError for .proto files that do not compile).
    """
    if service.type is not ServiceType.GRPC:
        return None
    if service.descriptor_set is not None:
        files = from_descriptor_set(service.files[service.descriptor_set], service.descriptor_set)
    elif service.protos:
        files = _compiled(service)
    elif reflected is not None:
        files = list(reflected)
    else:
        return None
    pool = build_pool(files)
    return ServiceSchema(pool, services_in(pool, [f.name for f in files]))


def _compiled(service: Service) -> FileProtos:
    """The service's .proto files compiled (kept by content: loads repeat)."""
    digest = hashlib.sha256(repr((service.protos, service.import_paths)).encode())
    for file in sorted(service.files):
        digest.update(file.encode() + b"\0" + service.files[file] + b"\0")
    key = digest.hexdigest()
    with _COMPILED_LOCK:
        data = _COMPILED.get(key)
        if data is not None:
            _COMPILED.move_to_end(key)
    if data is None:
        files = compile_protos(service.files, service.protos, service.import_paths)
        data = descriptor_pb2.FileDescriptorSet(file=files).SerializeToString()
        with _COMPILED_LOCK:
            _COMPILED[key] = data
            if len(_COMPILED) > _COMPILED_KEPT:
                _COMPILED.popitem(last=False)
    return list(descriptor_pb2.FileDescriptorSet.FromString(data).file)


def _compile_errors(
    reader: Reader, root: Node, name: str, service: Service, error: ProtoCompileError
) -> None:
    """Each protoc error at the `protos` entry it belongs to, with its place in the .proto."""
    for problem in error.problems:
        listed = [p for p in service.protos if problem.file in (p, *_suffixes(p))]
        index = service.protos.index(listed[0]) if listed else 0
        node = find_node(root, ["services", name, "protos", index])
        message = f"'{service.protos[index]}' does not compile: {problem}"
        reader.error(node, f"services.{name}.protos[{index}]", "proto-error", message)


def _suffixes(path: str) -> list[str]:
    """The names protoc may give a file found through an import path: its tails."""
    parts = path.split("/")
    return ["/".join(parts[i:]) for i in range(1, len(parts))]
