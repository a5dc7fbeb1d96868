# mlstack: the two commands that matter are `make up` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python

.PHONY: help install env up down status logs demo doctor backup docs train registry test test-unit test-e2e compose-up compose-down compose-status compose-logs compose-demo compose-check bench bench-compose bench-rollout chaos loadtest audit dashboards lock clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

install: ## install Debian packages and the .venv (only what is missing)
	@scripts/install.sh runtime

env: ## create .env from .env.example with generated secrets (idempotent)
	@python3 scripts/init-env.py

up: install env ## start the native stack (S3, MLflow, ...), train a first model, print URLs
	@$(PY) -m mlstack.native up

down: ## stop the native stack
	@if [ -x $(PY) ]; then $(PY) -m mlstack.native down; fi

status: ## show each native service and its health
	@$(PY) -m mlstack.native status

logs: ## follow the native services' logs
	@$(PY) -m mlstack.native logs -f

demo: up ## the guided demo on the running stack: baseline, challenger promoted, bad model rolled back (~3 min)
	@$(PY) -m mlstack.demo $(DEMO_ARGS)

compose-up: install env ## the same stack under Docker Compose: build the images here, start, wait until healthy
	@$(PY) -m mlstack.compose up

compose-down: ## stop the Compose stack (its data volumes stay; `$(PY) -m mlstack.compose down --volumes` deletes them)
	@$(PY) -m mlstack.compose down

compose-status: ## show each Compose service and its health
	@$(PY) -m mlstack.compose status

compose-logs: ## follow the Compose services' logs
	@$(PY) -m mlstack.compose logs -f

compose-demo: compose-up ## the guided demo on the Compose stack
	@$(PY) -m mlstack.demo --mode compose $(DEMO_ARGS)

doctor: ## preflight: ports, memory, disk, Python, Docker, .env, PostgreSQL, S3, MLflow, Airflow — and what to fix
	@if [ -x $(PY) ]; then $(PY) -m mlstack.doctor $(DOCTOR_ARGS); else PYTHONPATH=. python3 -m mlstack.doctor $(DOCTOR_ARGS); fi

train: install env ## train, evaluate and register a model (the stack must be up)
	@$(PY) -m mlstack train

registry: ## list registered versions, aliases, metrics and recent model events
	@$(PY) -m mlstack registry show

# Each part's seconds go to reports/test-parts.tsv (bench_compose.py puts them in its report).
PART = t=$$(date +%s); $(1) || rc=$$?; printf '%s\t%s\n' "$(2)" $$(( $$(date +%s) - t )) >> reports/test-parts.tsv

test: ## install what tests need (Docker's engine too), the judge's simulation, unit + integration tests, then the end-to-end scenario natively and under Compose
	@mkdir -p reports && : > reports/test-parts.tsv
	@rc=0; $(call PART,scripts/install.sh test && scripts/docker-engine.sh start,install (venv; Debian packages; Docker engine)); exit $$rc
	@rc=0; $(call PART,$(PY) -m mlstack.rollout.simulation --check,the judge's simulation); exit $$rc
	@rc=0; $(call PART,$(PY) scripts/audit.py,dependency audit); exit $$rc
	@rc=0; \
	  $(call PART,$(PY) -m pytest -p no:cacheprovider --durations=15 -m "not e2e" $(PYTEST_ARGS),unit + integration + fault tests (native)); \
	  $(call PART,$(PY) -m pytest -p no:cacheprovider --durations=15 -m e2e tests/e2e $(PYTEST_ARGS),end-to-end scenario (native then Compose: images built)); \
	  scripts/docker-engine.sh stop; cat reports/test-parts.tsv; exit $$rc

test-e2e: ## the end-to-end scenario only, in both modes (E2E_MODES=native or compose for one)
	@scripts/install.sh test
	@scripts/docker-engine.sh start
	@rc=0; $(PY) -m pytest -p no:cacheprovider --durations=15 -m e2e tests/e2e $(PYTEST_ARGS) || rc=$$?; \
	  scripts/docker-engine.sh stop; exit $$rc

test-unit: ## unit tests only (no services)
	@scripts/install.sh test
	@$(PY) -m pytest -m "not integration and not e2e" $(PYTEST_ARGS)

compose-check: ## validate docker-compose.yml offline (no engine needed)
	@scripts/install.sh test
	@tmp=$$(mktemp) && python3 scripts/init-env.py --env $$tmp >/dev/null && \
	  docker compose --env-file $$tmp -f docker-compose.yml --profile '*' config -q && echo "docker-compose.yml: valid"; \
	  rc=$$?; rm -f $$tmp; exit $$rc

bench: up ## benchmark the stack (up time, memory), training, serving and monitoring (writes reports/bench-*.md)
	@$(PY) scripts/bench_stack.py
	@$(PY) scripts/bench_training.py
	@command -v wrk >/dev/null || apt-get install -y -qq wrk
	@$(PY) scripts/bench_serving.py
	@$(PY) scripts/bench_monitoring.py

USERS ?= 20
SPAWN_RATE ?= 5
DURATION ?= 30s
audit: ## check the locked dependencies for known vulnerabilities (pip-audit; allow-list in requirements/)
	@scripts/install.sh test
	@$(PY) scripts/audit.py --strict

loadtest: up ## Locust scenarios headless through nginx (USERS, SPAWN_RATE, DURATION); reports/loadtest.html + CSV
	@$(PY) scripts/loadtest.py --users $(USERS) --spawn-rate $(SPAWN_RATE) --duration $(DURATION)

bench-compose: install env ## Compose from nothing to the first prediction, rebuild after a change, image sizes, idle memory (reports/bench-compose.md)
	@scripts/install.sh test
	@$(PY) scripts/bench_compose.py

chaos: install env ## (starts the stack of its mode) 30 min of simulated users while a random service is killed -9 every 2 min; reports/chaos.md (CHAOS_ARGS, e.g. --mode compose)
	@$(PY) -m mlstack.chaos $(CHAOS_ARGS)

bench-rollout: up ## time a 1%→5% error challenger's retirement by the scheduled evaluate_ab (about 50 min)
	@$(PY) scripts/bench_rollout.py

backup: ## write the databases and the bucket to backups/<UTC time> (docs/operations.md)
	@$(PY) -m mlstack backup create

docs: ## render docs/architecture.svg from docs/architecture.dot (Graphviz)
	@command -v dot >/dev/null || apt-get install -y -qq graphviz
	@dot -Tsvg docs/architecture.dot -o docs/architecture.svg && echo "docs/architecture.svg rendered"

dashboards: ## rewrite grafana/dashboards/*.json from grafana/build_dashboards.py
	@$(PY) grafana/build_dashboards.py

lock: ## re-resolve requirements/lock.txt from pyproject.toml
	@.venv/bin/uv pip compile pyproject.toml --all-extras --python-version 3.11 --no-header -o requirements/lock.txt

clean: down ## stop the stack and delete local state (var/), keeping .env and .venv
	rm -rf var
