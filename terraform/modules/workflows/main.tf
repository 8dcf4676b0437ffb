# The long-job workflow. Its source is workflows/long_job.yaml (read by the environment root and
# passed in), executed as the workflows service account, which calls the worker with OIDC.
# No user_env_vars: every input (worker URLs, control URL, backoff) arrives in the execution
# argument built by shared/services/dispatch.py, so one definition serves every dispatch.
resource "google_workflows_workflow" "long_job" {
  project                 = var.project_id
  region                  = var.region
  name                    = "${var.name_prefix}codex-long-job"
  description             = "Runs a long codex job on the worker pool and records its outcome."
  service_account         = var.service_account_email
  source_contents         = var.source_contents
  call_log_level          = "LOG_ERRORS_ONLY"
  execution_history_level = "EXECUTION_HISTORY_BASIC"
  deletion_protection     = var.deletion_protection
  labels                  = var.labels
}
