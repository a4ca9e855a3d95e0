# jobcenter: developer entry points. `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Extra arguments for `make test`, e.g. make test ARGS='-p jobcenter-api -- --nocapture'
ARGS ?=

.PHONY: help run test fuzz chaos lint fmt openapi bench build clean-data

help: ## list the targets
	@echo "jobcenter make targets:"
	@grep -E '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  make %-11s %s\n", $$1, $$2}'

run: ## start PostgreSQL if needed, then jobcenter (api+scheduler+worker) on http://127.0.0.1:8080
	scripts/run.sh

test: ## start PostgreSQL if needed, cargo test --workspace --all-targets (extra args: ARGS='...'), then make fuzz
	scripts/test.sh $(ARGS)

fuzz: ## Schemathesis against a running jobcenter, every operation of the OpenAPI document (part of make test)
	scripts/fuzz.sh

chaos: ## 10,000 runs while a worker is SIGKILLed every 10 s and the leader every 30 s: lost, doubled, longest recovery (not in make test)
	scripts/chaos.sh

lint: ## cargo fmt --check and cargo clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## format the code (cargo fmt --all)
	cargo fmt --all

openapi: ## regenerate openapi/openapi.json from the code
	cargo run --quiet --bin jobcenter -- openapi > openapi/openapi.json.tmp || { rm -f openapi/openapi.json.tmp; exit 1; }
	mv -f openapi/openapi.json.tmp openapi/openapi.json

bench: ## release build, private PostgreSQL, every scenario, one table (BENCH_QUICK=1: smoke run); see BENCHMARKS.md
	scripts/bench.sh

build: ## cargo build --workspace --release
	cargo build --workspace --release

clean-data: ## stop the private PostgreSQL started under data/ (if any) and delete data/
	scripts/clean-data.sh
