#!/usr/bin/env bash
# deploy-gate.sh CMD [ARG...] — run CMD only in builds of the main branch that are not pull
# request builds, the same rule as terraform apply (cloudbuild/terraform.sh); otherwise report the
# skipped deploy and succeed. Inputs (environment): BRANCH_NAME, PR_NUMBER (set from the build's
# substitutions in cloudbuild.yaml options.env).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: deploy-gate.sh CMD [ARG...]" >&2; exit 2; }
if [ "${BRANCH_NAME:-}" = main ] && [ -z "${PR_NUMBER:-}" ]; then
  exec "$@"
fi
echo "branch '${BRANCH_NAME:-}'${PR_NUMBER:+ (pull request ${PR_NUMBER})}: deploy skipped, only main deploys: $*"
