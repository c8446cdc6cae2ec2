# Maestro: `maestro serve` in a slim, non-root image. It listens on every interface of the
# container, so it needs bearer tokens (one per line: `TOKEN` or `TOKEN read`), mounted at
# /run/secrets/maestro-tokens; the arguments (CMD) name the endpoints workflows may call.
#   docker build -t maestro:0.1.0 .
#   docker run -p 8080:8080 -v "$PWD/tokens:/run/secrets/maestro-tokens:ro" maestro:0.1.0 \
#       --store memory --allow-endpoint 'crm:*' --allow-endpoint 'billing:*'
# Kubernetes probes the gRPC health service natively (see deploy/kubernetes/).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md buf.yaml ./
COPY proto ./proto
COPY maestro_server ./maestro_server
RUN pip install --no-cache-dir build==1.2.* && python -m build --wheel --outdir /wheels .

FROM python:3.11-slim
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin maestro
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /home/maestro
EXPOSE 8080 9090
ENTRYPOINT ["maestro", "serve", "--host", "0.0.0.0", "--port", "8080", "--log-format", "json", \
            "--auth-token-file", "/run/secrets/maestro-tokens"]
CMD ["--allow-endpoint", "*.svc.cluster.local:*"]
