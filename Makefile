# Every target installs what it needs first; on a fresh machine `make demo` and `make test`
# are the only two commands to know. The work itself lives in scripts/.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install install-tools proto lint test screenshots demo build bench bench-scale chaos fuzz client-range clean

$(STAMP): pyproject.toml maestro_client/pyproject.toml scripts/install.sh examples/onboarding/services/auth-node/package-lock.json \
		tests/api/connect-web/package-lock.json
	bash scripts/install.sh
	touch $(STAMP)

install: $(STAMP)  ## venv in .venv, editable install with the dev, deploy and bench extras

install-tools: $(STAMP)  ## check the dev tools make install put in .venv/bin (buf, grpcurl)
	bash scripts/install-tools.sh

proto: $(STAMP)  ## regenerate maestro_server/_proto and maestro_client/_proto
	$(PY) scripts/gen_proto.py

lint: $(STAMP)  ## ruff, mypy, buf lint/format/breaking
	bash scripts/lint.sh

test: lint  ## lint, then every test
	bash scripts/test.sh

screenshots: $(STAMP)  ## retake the console screenshots in docs/console/ (the README shows them)
	MAESTRO_SCREENSHOTS=update bash scripts/test.sh tests/console -q

demo: $(STAMP)  ## the onboarding and order examples end to end
	bash scripts/demo.sh

build: $(STAMP)  ## sdist and wheel of the server and of the client into dist/
	bash scripts/build.sh

bench: $(STAMP)  ## benchmarks against direct calls, issue 13's targets PASS/FAIL; bench/results/latest.json
	bash scripts/bench.sh $(BENCH_FLAGS)

bench-scale: $(STAMP)  ## 10,000 executions in flight, each waiting 2 s (SQLite); bench/results/scale.json
	bash scripts/bench.sh --scale-only $(BENCH_FLAGS)

chaos: $(STAMP)  ## fault injection and crashes: 2,000 executions on SQLite, 1,000 on PostgreSQL
	bash scripts/chaos.sh $(CHAOS_FLAGS)

fuzz: $(STAMP)  ## the fuzz tests with 20x the examples of `make test`
	bash scripts/fuzz.sh

client-range: $(STAMP)  ## the SDK at both ends of its grpcio range, in throwaway venvs (needs the index)
	bash scripts/client-range.sh

clean:
	rm -rf $(VENV) dist build .mypy_cache .ruff_cache .pytest_cache .hypothesis
