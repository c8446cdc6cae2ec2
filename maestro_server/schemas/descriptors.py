"""Descriptor sources: FileDescriptorSets, .proto files, and repairing what servers send.

Every downstream service gets its own DescriptorPool: two services may define the same type
names, and Maestro's own generated types live in the default pool.
"""

from __future__ import annotations

import importlib.resources
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError

FileProtos = list[descriptor_pb2.FileDescriptorProto]


class SchemaError(Exception):
    """A schema could not be read or built."""


@dataclass(frozen=True, slots=True)
class ProtoProblem:
    """One error protoc reports, at its 1-based line and column of a .proto file."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ProtoCompileError(SchemaError):
    """.proto files that do not compile, with each of protoc's located errors."""

    def __init__(self, problems: list[ProtoProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def from_descriptor_set(data: bytes, name: str) -> FileProtos:
    """The files of a serialized FileDescriptorSet."""
    try:
        file_set = descriptor_pb2.FileDescriptorSet.FromString(data)
    except DecodeError as exc:
        raise SchemaError(f"descriptor set '{name}' does not parse: {exc}") from None
    if not file_set.file:
        raise SchemaError(f"descriptor set '{name}' holds no file")
    return list(file_set.file)


def compile_protos(
    files: Mapping[str, bytes], protos: Iterable[str], import_paths: Iterable[str]
) -> FileProtos:
    """Compile .proto files with grpcio-tools' protoc (blocking: run it in a thread)."""
    # Imported here: a workflow without .proto files (and `maestro validate` of one) does not
    # load the compiler.
    from grpc_tools import protoc  # noqa: PLC0415

    wkt = importlib.resources.files("grpc_tools") / "_proto"
    try:
        folder = tempfile.TemporaryDirectory(prefix="maestro-protos-")
    except OSError as exc:  # a read-only root file system, and no writable TMPDIR
        raise SchemaError(
            f"no temporary directory to compile {', '.join(protos)} in ({exc.strerror or exc}): "
            "set TMPDIR to a writable directory"
        ) from None
    with folder as tmp:
        root = Path(tmp)
        for name, data in files.items():
            target = (root / name).resolve()
            if not target.is_relative_to(root.resolve()):  # the parser refuses these already
                raise SchemaError(f"file name {name!r} leaves the schema folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        out = root / "out.binpb"
        includes = [*(str(root / p) for p in import_paths), str(root), str(wkt)]
        _check_compiles(protos, includes, root)
        args = [
            "protoc",
            *(f"-I{include}" for include in includes),
            "--include_imports",
            f"--descriptor_set_out={out}",
            *(str(root / p) for p in protos),
        ]
        if protoc.main(args) != 0 or not out.exists():
            raise SchemaError(f"protoc could not compile {', '.join(protos)}")
        return from_descriptor_set(out.read_bytes(), "compiled protos")


def _check_compiles(protos: Iterable[str], includes: list[str], root: Path) -> None:
    """Raise ProtoCompileError with protoc's located errors, without printing them.

    protoc.main prints its errors on the process's stderr; the compiler's module-level entry
    (the one `grpc.protos()` uses) returns them as values instead.
    """
    from grpc_tools import _protoc_compiler  # noqa: PLC0415 - as compile_protos

    problems: list[ProtoProblem] = []
    for proto in protos:
        # protoc names a file by the first include folder holding it; so must this check.
        path = root / proto
        virtual = next(
            (str(path.relative_to(i)) for i in includes if path.is_relative_to(i)), proto
        )
        try:
            _protoc_compiler.get_protos(virtual.encode(), [i.encode() for i in includes])
        except _protoc_compiler.ProtocErrors as exc:
            for error in exc.errors():
                name = error.filename.decode(errors="replace")
                # Files are named as found on an include path; name them from the schema root.
                for include in includes:
                    if (Path(include) / name).is_file() and Path(include).is_relative_to(root):
                        name = str((Path(include) / name).relative_to(root))
                        break
                problem = ProtoProblem(
                    name, error.line + 1, error.column + 1, error.message.decode(errors="replace")
                )
                if problem not in problems:
                    problems.append(problem)
    if problems:
        raise ProtoCompileError(problems)


def _symbols(fdp: descriptor_pb2.FileDescriptorProto) -> Iterator[str]:
    prefix = f".{fdp.package}" if fdp.package else ""

    def walk(scope: str, messages: Iterable[descriptor_pb2.DescriptorProto]) -> Iterator[str]:
        for message in messages:
            name = f"{scope}.{message.name}"
            yield name
            yield from walk(name, message.nested_type)
            yield from (f"{name}.{e.name}" for e in message.enum_type)

    yield from walk(prefix, fdp.message_type)
    yield from (f"{prefix}.{e.name}" for e in fdp.enum_type)
    yield from (f"{prefix}.{s.name}" for s in fdp.service)


def _reference_slots(fdp: descriptor_pb2.FileDescriptorProto) -> Iterator[tuple[Any, str, str]]:
    """(holder, attribute, scope) of every type reference, scope being where it is resolved."""
    package = f".{fdp.package}" if fdp.package else ""

    def walk(
        scope: str, messages: Iterable[descriptor_pb2.DescriptorProto]
    ) -> Iterator[tuple[Any, str, str]]:
        for message in messages:
            inner = f"{scope}.{message.name}"
            for field in message.field:
                if field.type_name:
                    yield field, "type_name", inner
            for extension in message.extension:
                yield extension, "extendee", inner
            yield from walk(inner, message.nested_type)

    yield from walk(package, fdp.message_type)
    for extension in fdp.extension:
        yield extension, "extendee", package
    for service in fdp.service:
        for method in service.method:
            yield method, "input_type", package
            yield method, "output_type", package


def _resolve(name: str, scope: str, owners: Mapping[str, str]) -> str | None:
    """The fully qualified name a (possibly relative) type reference means, if it is defined."""
    if name.startswith("."):
        return name if name in owners else None
    while True:
        candidate = f"{scope}.{name}"
        if candidate in owners:
            return candidate
        if not scope:
            return None
        scope = scope.rsplit(".", 1)[0] if "." in scope[1:] else ""


def missing_symbols(files: Mapping[str, descriptor_pb2.FileDescriptorProto]) -> set[str]:
    """Repair files in place; return the referenced symbols that no file defines.

    Some reflection servers (Node's @grpc/reflection) send files without their `dependency`
    lists and with type names that are not fully qualified: every reference is resolved,
    rewritten fully qualified, and its owner added as a dependency.
    """
    owners = {symbol: name for name, fdp in files.items() for symbol in _symbols(fdp)}
    unknown: set[str] = set()
    for name, fdp in files.items():
        for holder, attribute, scope in _reference_slots(fdp):
            reference = getattr(holder, attribute)
            resolved = _resolve(reference, scope, owners)
            if resolved is None:
                unknown.add(reference.lstrip("."))
                continue
            setattr(holder, attribute, resolved)
            owner = owners[resolved]
            if owner != name and owner not in fdp.dependency:
                fdp.dependency.append(owner)
    return unknown


def build_pool(
    files: Iterable[descriptor_pb2.FileDescriptorProto],
) -> descriptor_pool.DescriptorPool:
    """A fresh pool holding `files`, added dependencies first."""
    by_name = {fdp.name: fdp for fdp in files}
    unknown = missing_symbols(by_name)
    if unknown:
        raise SchemaError(f"the schema refers to undefined types: {', '.join(sorted(unknown))}")
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str, trail: tuple[str, ...]) -> None:
        if name in added:
            return
        if name in trail:
            raise SchemaError(f"import cycle: {' → '.join([*trail, name])}")
        fdp = by_name.get(name)
        if fdp is None:
            raise SchemaError(f"file '{name}' is imported but missing from the schema")
        for dependency in fdp.dependency:
            add(dependency, (*trail, name))
        try:
            pool.AddSerializedFile(fdp.SerializeToString())
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"file '{name}' does not fit in the schema: {exc}") from None
        added.add(name)

    for name in by_name:
        add(name, ())
    return pool
