# Infrastructure checks, included by the main Makefile. scripts/lint-infra.sh installs its own
# pinned tools (.venv-infra, .venv-checkov, promtool) and runs every offline check.
.PHONY: lint-infra

lint-infra:  ## offline checks of terraform, k8s, Dockerfile, Cloud Build, Workflows, OpenAPI, monitoring
	bash scripts/lint-infra.sh
