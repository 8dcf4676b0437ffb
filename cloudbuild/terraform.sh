#!/bin/sh
# terraform.sh — init, plan and, for the main branch only, apply one environment root. Runs from
# terraform/environments/<env> in the terraform step image (POSIX sh). Inputs (environment):
#   TF_STATE_BUCKET        state bucket
#   BRANCH_NAME, PR_NUMBER apply only when BRANCH_NAME is main and the build is no pull request
#   API_GATEWAY_HOSTNAME   trigger substitution _API_GATEWAY_HOSTNAME: the gateway's default
#                          hostname (docs/deploy.md step 10), or "none" while there is no gateway
#   NOTIFICATION_EMAILS    trigger substitution _NOTIFICATION_EMAILS: alert recipients separated
#                          by spaces, commas or semicolons, or "none" for no email channel
#   TF_VAR_*               the other root variables, set by the build step
# terraform.tfvars is not committed, so values an operator keeps only there must come from the
# trigger: left empty, an apply would point CODEX_CLOUD_API_BASE_URL back at the Cloud Run URL and
# delete the email notification channels. A missing value therefore stops the build; "none"
# states the empty value on purpose.
set -eu

fail() {
  echo "terraform.sh: $*" >&2
  exit 1
}

[ -n "${TF_STATE_BUCKET:-}" ] || fail "TF_STATE_BUCKET is not set"
[ -n "${API_GATEWAY_HOSTNAME:-}" ] ||
  fail "set the trigger substitution _API_GATEWAY_HOSTNAME (the API Gateway hostname, or none before the gateway exists; docs/deploy.md step 9)"
[ -n "${NOTIFICATION_EMAILS:-}" ] ||
  fail "set the trigger substitution _NOTIFICATION_EMAILS (alert recipients, or none; docs/deploy.md step 9)"

if [ "${API_GATEWAY_HOSTNAME}" != none ]; then
  TF_VAR_api_gateway_hostname=${API_GATEWAY_HOSTNAME}
  export TF_VAR_api_gateway_hostname
fi

emails=""
if [ "${NOTIFICATION_EMAILS}" != none ]; then
  set -f # no pathname expansion of the split words
  for email in $(printf '%s' "${NOTIFICATION_EMAILS}" | tr ',;' '  '); do
    case "${email}" in
      *'"'* | *'\'* | *'$'* | *'{'* ) fail "_NOTIFICATION_EMAILS: not an email address: ${email}" ;;
      ?*@?*.?*) ;;
      *) fail "_NOTIFICATION_EMAILS: not an email address: ${email}" ;;
    esac
    emails="${emails:+${emails}, }\"${email}\""
  done
  set +f
  [ -n "${emails}" ] || fail "_NOTIFICATION_EMAILS has no address (use none for no email channel)"
fi
TF_VAR_notification_emails="[${emails}]"
export TF_VAR_notification_emails
echo "api_gateway_hostname=${TF_VAR_api_gateway_hostname:-null} notification_emails=${TF_VAR_notification_emails}"

terraform init -input=false -backend-config="bucket=${TF_STATE_BUCKET}"
terraform plan -input=false -lock-timeout=300s -out=tfplan
if [ "${BRANCH_NAME:-}" = main ] && [ -z "${PR_NUMBER:-}" ]; then
  terraform apply -input=false -lock-timeout=300s tfplan
else
  echo "branch '${BRANCH_NAME:-}'${PR_NUMBER:+ (pull request ${PR_NUMBER})}: plan only"
fi
