# Two commands do everything: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench setup clean

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)
	mkdir -p var

run: setup  ## migrate, seed the demo tenant, serve on 127.0.0.1:$${PORT:-8000} with a Celery worker
	bin/run

test: setup  ## the import layers, then the whole suite, on the embedded defaults unless DATABASE_URL / CELERY_BROKER_URL say otherwise
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup  ## benchmarks (docs/performance.md); DATABASE_URL / CELERY_BROKER_URL for PostgreSQL and Redis
	command -v wrk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(PY) bench/run.py

clean:
	rm -rf var .pytest_cache
