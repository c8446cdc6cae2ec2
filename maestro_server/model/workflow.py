"""The validated workflow: services, steps, compensations and their policies.

Built by `maestro_server.definition` from YAML; every object here is immutable and already
checked, so the engine never re-validates. Durations are `timedelta`s; templates are compiled.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from maestro_server.diagnostics import SourceLocation
from maestro_server.templating.path import HttpPath
from maestro_server.templating.values import CompiledValue, Literal, SequenceValue, Template

GRPC_STATUS_NAMES = frozenset(
    {
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    }
)
"""Error codes of gRPC calls. Transport failures of HTTP calls use the same names: a refused or
reset connection is UNAVAILABLE, a timeout DEADLINE_EXCEEDED. HTTP responses are `HTTP_<status>`."""

DEFAULT_RETRY_ON = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"}
    | {f"HTTP_{status}" for status in (408, 425, 429, 500, 502, 503, 504)}
)

RESERVED_NAMES = frozenset({"input", "steps", "execution", "workflow", "secrets"})
"""Names of the template context that step outputs may not take."""


class ServiceType(enum.StrEnum):
    """How a service is called."""

    GRPC = "grpc"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often a failed call is tried again.

    Attempt n (n >= 1) that fails with a code in `retry_on` waits a random time between
    `(1 - jitter) * d` and `d`, where `d = min(max_backoff, initial_backoff * multiplier**(n-1))`.
    """

    max_attempts: int = 3
    """Attempts in all, the first one included; 1 means no retry."""
    initial_backoff: timedelta = timedelta(milliseconds=200)
    max_backoff: timedelta = timedelta(seconds=10)
    multiplier: float = 2.0
    jitter: float = 1.0
    """Share of the delay that is random: 1.0 is full jitter, 0 none."""
    retry_on: frozenset[str] = DEFAULT_RETRY_ON
    """Error codes that are retried; any other error fails the step at once."""


DEFAULT_RETRY = RetryPolicy()
DEFAULT_COMPENSATION_RETRY = RetryPolicy(
    max_attempts=10,
    initial_backoff=timedelta(milliseconds=500),
    max_backoff=timedelta(seconds=30),
)
"""Compensations must not give up easily: an undone step left done costs more than a wait."""

DEFAULT_TIMEOUT = timedelta(seconds=10)
"""The per-attempt deadline when neither the step nor its service sets one."""


@dataclass(frozen=True, slots=True)
class CircuitBreakerPolicy:
    """One breaker per service, endpoint and policy, shared by every execution in a process.

    Opens when at least `failure_rate_threshold` of the last `window_size` calls failed and at
    least `minimum_calls` were made; stays open for `open_duration`, then lets `half_open_calls`
    trial calls through.
    """

    enabled: bool = True
    failure_rate_threshold: float = 0.5
    window_size: int = 20
    minimum_calls: int = 10
    open_duration: timedelta = timedelta(seconds=30)
    half_open_calls: int = 3


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS towards a service.

    `ca_file` (relative to the workflow, travelling with it) is the CA to trust instead of the
    system's; a client certificate and key for mTLS are secrets, named here and read from the
    server's secrets, never stored with the workflow.
    """

    ca_file: str | None = None
    server_name: str | None = None
    """The name to check the server's certificate against, when it differs from the host."""
    client_cert_secret: str | None = None
    client_key_secret: str | None = None


@dataclass(frozen=True, slots=True)
class GrpcMethod:
    """A gRPC method: `CreateUser`, or fully qualified `pkg.Service/CreateUser`."""

    name: str
    service: str | None = None
    """The fully qualified service name, or None to find `name` among the endpoint's services."""

    def __str__(self) -> str:
        return f"{self.service}/{self.name}" if self.service else self.name


@dataclass(frozen=True, slots=True)
class HttpMethod:
    """An HTTP call: a verb and a path that may hold templates (expanded as data)."""

    verb: str
    path: HttpPath

    def __str__(self) -> str:
        return f"{self.verb} {self.path.source}"


Method = GrpcMethod | HttpMethod


@dataclass(frozen=True, slots=True)
class Service:
    """A downstream service, named in the workflow's `services`."""

    name: str
    type: ServiceType
    endpoint: str
    location: SourceLocation
    endpoint_location: SourceLocation | None = None
    """Where the endpoint is written, for diagnostics about it."""
    timeout: timedelta = DEFAULT_TIMEOUT
    retry: RetryPolicy = DEFAULT_RETRY
    """The service's default for its steps; a step's own `retry` keys override it key by key."""
    circuit_breaker: CircuitBreakerPolicy = CircuitBreakerPolicy()
    headers: Mapping[str, CompiledValue] = field(default_factory=dict)
    """gRPC metadata or HTTP headers sent with every call."""
    tls: TlsConfig | None = None
    descriptor_set: str | None = None
    """gRPC: a FileDescriptorSet file, instead of server reflection."""
    protos: tuple[str, ...] = ()
    """gRPC: .proto files compiled at load, instead of server reflection."""
    import_paths: tuple[str, ...] = ()
    files: Mapping[str, bytes] = field(default_factory=dict)
    """gRPC: the schema files by path relative to the workflow: the descriptor set, or the
    .proto files with every file they import (but Google's well-known types)."""


@dataclass(frozen=True, slots=True)
class Compensation:
    """What undoes a completed step."""

    service: str
    method: Method
    location: SourceLocation
    input: CompiledValue | None = None
    retry: RetryPolicy = DEFAULT_COMPENSATION_RETRY
    timeout: timedelta = DEFAULT_TIMEOUT


MAX_CONCURRENCY = 64
"""The most elements of a `for_each` step that may run at once."""


@dataclass(frozen=True, slots=True)
class ForEach:
    """A step run once per element of a list (`for_each`, `as`, `concurrency`).

    Inside the step's `input`, `when` and `compensate`, the element is bound to `name` and its
    position (from 0) to `index`; in `compensate`, the step's output name means that element's
    output. The step's output is the list of the elements' outputs, in the list's order.
    """

    items: CompiledValue
    """Renders to the list (a template, or a literal list)."""
    name: str = "item"
    concurrency: int = 1
    """How many elements run at once; 1 runs them in order."""

    @property
    def source(self) -> str:
        """The list as written, for graphs: the template, or how many elements it has."""
        if isinstance(self.items, Template):
            return self.items.source
        if isinstance(self.items, Literal) and isinstance(self.items.value, list):
            return f"a list of {len(self.items.value)}"
        if isinstance(self.items, SequenceValue):
            return f"a list of {len(self.items.items)}"
        return "a list"


ELEMENT_INDEX = "index"
"""The name an element's position is bound to inside a `for_each` step."""


@dataclass(frozen=True, slots=True)
class WaitForSignal:
    """`wait: {signal: NAME, timeout: 24h}`: the step ends when the signal comes."""

    signal: str
    timeout: timedelta | None = None
    """From the moment the step starts waiting, across restarts; None waits for ever."""


@dataclass(frozen=True, slots=True)
class Sleep:
    """`sleep: 30s` or `sleep: {until: "…"}`: the step ends at a time (a durable timer)."""

    duration: timedelta | None = None
    until: CompiledValue | None = None
    """Renders to an RFC 3339 time with its zone, when the step starts."""


Pause = WaitForSignal | Sleep
"""What a step that calls nothing waits for."""

DEFAULT_MAX_WORKFLOW_DEPTH = 8
"""How deep sub-workflows may nest: a top-level execution is at depth 1."""


@dataclass(frozen=True, slots=True)
class SubWorkflow:
    """`workflow: {name: payment, version: "2"}` or `workflow: {file: payment.yaml}`.

    The step runs the workflow as a child execution. A registered one without a version runs
    the version that was the latest when the parent started (pinned then, see
    `Workflow.with_versions`); a file one is read and validated with its parent, its files
    travelling with the parent's, so that a resume rebuilds it from the parent's source.
    """

    name: str = ""
    version: str = ""
    """Empty: the latest registered version, as pinned when the parent started."""
    file: str = ""
    """The file, relative to the parent's folder (then `name` and `version` are empty)."""
    definition: Workflow | None = field(default=None, compare=False, repr=False)
    """A file's workflow, validated with its parent."""
    location: SourceLocation | None = field(default=None, compare=False)
    """Where the registered name is written, for the server's checks of it."""
    timeout: timedelta | None = None
    """The step's `timeout`: how long it waits for the child, from the step's start, across
    restarts (None: for ever). At the deadline the child is cancelled and the step fails."""

    @property
    def source(self) -> str:
        """How the step names its workflow, for graphs and errors: `payment@2`, `file x.yaml`."""
        if self.file:
            return f"file {self.file}"
        return f"{self.name}@{self.version}" if self.version else self.name


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the workflow: a call, a pause, or a sub-workflow.

    A pause (`wait` or `sleep`) calls nothing; a sub-workflow (`workflow`) runs as a child
    execution. Neither has a service (`service` is empty); their method is a placeholder.
    """

    id: str
    service: str
    method: Method
    location: SourceLocation
    input: CompiledValue | None = None
    output: str | None = None
    """The name later templates read the result by, e.g. `user` for `{{ .user.id }}`."""
    compensate: Compensation | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: timedelta = DEFAULT_TIMEOUT
    """Deadline of each attempt."""
    when: Template | None = None
    """Skip the step when this renders false."""
    depends_on: tuple[str, ...] = ()
    """Ids of the steps that must finish first (the previous step when the YAML names none)."""
    continue_on_error: bool = False
    """Record a failure and go on instead of compensating."""
    for_each: ForEach | None = None
    """Run the step once per element of a list."""
    pause: Pause | None = None
    """A `wait` or `sleep` step: what it waits for, instead of a call."""
    workflow: SubWorkflow | None = None
    """A sub-workflow step: the workflow it runs as a child execution, instead of a call.

    Its `timeout` bounds the wait for the child (from the step's start, across restarts)."""


PAUSE_METHOD = GrpcMethod("")
"""The method of a pause step, which calls nothing."""


@dataclass(frozen=True, slots=True)
class InputRead:
    """A value of `.input` the workflow reads whatever happens, so a start must give it.

    Found at load: read by a step without `when` (or by a `when`, the workflow's output, or the
    headers of a service such a step calls), outside `default`, `index` and conditional
    branches.
    """

    path: tuple[str | int, ...]
    """Keys under `.input`, e.g. ("user", "email")."""
    reader: str
    """Who reads it, for the error: "step 'create_user' (input.email)"."""
    kind: str | None = None
    """The JSON type the value must have, when it goes unchanged into a field whose type a
    service's schema gives (string, integer, number, boolean, object, array)."""
    field: str = ""
    """That field, e.g. "auth.v1.CreateUserRequest.email (string)"."""


@dataclass(frozen=True)  # no slots: `step()` caches an index in the instance's __dict__
class Workflow:
    """A validated workflow definition."""

    name: str
    version: str
    services: Mapping[str, Service]
    steps: tuple[Step, ...]
    path: str
    """The file the workflow was read from, as named in diagnostics."""
    source: str
    """The YAML text."""
    files: Mapping[str, bytes]
    """The files the workflow refers to (descriptor sets, .proto files), by relative path."""
    hash: str
    """SHA-256 (hex) of the YAML and the files."""
    description: str = ""
    output: CompiledValue | None = None
    input_schema: Mapping[str, Any] | None = None
    timeout: timedelta | None = None
    """Deadline of the whole execution, if any."""
    input_reads: tuple[InputRead, ...] = ()
    """The `.input` values every execution needs, checked when it starts."""

    def with_endpoints(self, endpoints: Mapping[str, str]) -> Workflow:
        """The same workflow with some services pointed elsewhere (`name → endpoint`).

        `source` still names the original endpoints: whoever resumes an execution from its
        source points them again (a server keeps them as `ExecutionSource.endpoints`).
        """
        unknown = sorted(set(endpoints) - set(self.services))
        if unknown:
            raise KeyError(f"no service named {', '.join(unknown)}")
        services = {
            name: replace(service, endpoint=endpoints.get(name, service.endpoint))
            for name, service in self.services.items()
        }
        return replace(self, services=services)

    def with_versions(self, versions: Mapping[str, str]) -> Workflow:
        """The same workflow with its registered sub-workflows that name no version pinned.

        `versions` maps a workflow name to the version to run (the latest when the parent
        started); a server keeps them as `ExecutionSource.versions`, so a resume runs the same.
        """
        steps = tuple(
            replace(step, workflow=replace(step.workflow, version=versions[step.workflow.name]))
            if step.workflow is not None
            and not step.workflow.file
            and not step.workflow.version
            and step.workflow.name in versions
            else step
            for step in self.steps
        )
        return replace(self, steps=steps)

    @property
    def unpinned(self) -> frozenset[str]:
        """Names of the registered sub-workflows its steps run without naming a version."""
        return frozenset(
            step.workflow.name
            for step in self.steps
            if step.workflow is not None and not step.workflow.file and not step.workflow.version
        )

    def step(self, step_id: str) -> Step:
        """The step with this id; KeyError when there is none."""
        return self._steps_by_id[step_id]

    @functools.cached_property
    def _steps_by_id(self) -> dict[str, Step]:
        return {step.id: step for step in self.steps}
