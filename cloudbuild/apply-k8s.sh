#!/usr/bin/env bash
# Render the placeholders in k8s/ and apply the worker manifests to the environment's cluster.
# Inputs (environment): ENV REGION PROJECT NAME_PREFIX WORKER_HOSTNAME WORKER_IMAGE.
# The control plane has no public IP endpoint: credentials use the IAM-authenticated DNS endpoint.
set -euo pipefail
: "${ENV:?}" "${REGION:?}" "${PROJECT:?}" "${NAME_PREFIX:?}" "${WORKER_HOSTNAME:?}" "${WORKER_IMAGE:?}"

cluster="codex-${ENV}"
if [ "${ENV}" = "prod" ]; then location="${REGION}"; else location="${CLUSTER_LOCATION:-${REGION}-b}"; fi

api_url=$(gcloud run services describe api --region="${REGION}" --project="${PROJECT}" --format='value(status.url)')

out=$(mktemp -d)
for f in k8s/*.yaml k8s/gke/*.yaml; do
  mkdir -p "${out}/$(dirname "${f}")"
  sed -e "s#__PROJECT_ID__#${PROJECT}#g" \
      -e "s#__REGION__#${REGION}#g" \
      -e "s#__ENV__#${ENV}#g" \
      -e "s#__NAME_PREFIX__#${NAME_PREFIX}#g" \
      -e "s#__WORKER_HOSTNAME__#${WORKER_HOSTNAME}#g" \
      -e "s#__API_URL__#${api_url}#g" \
      -e "s#^\(\s*image: \).*/codex-cloud/worker:.*#\1${WORKER_IMAGE}#" \
      "${f}" > "${out}/${f}"
done
if grep -rn "__[A-Z_]*__" "${out}"; then
  echo "unrendered placeholders left" >&2
  exit 1
fi

gcloud container clusters get-credentials "${cluster}" --location="${location}" --project="${PROJECT}" --dns-endpoint
kubectl apply -f "${out}/k8s/namespace.yaml"
kubectl get secret codex-worker-secrets -n codex-cloud >/dev/null \
  || { echo "create the codex-worker-secrets Secret first (docs/deploy.md)" >&2; exit 1; }
kubectl apply -f "${out}/k8s/" -f "${out}/k8s/gke/"
kubectl rollout status statefulset/codex-worker -n codex-cloud --timeout=900s
