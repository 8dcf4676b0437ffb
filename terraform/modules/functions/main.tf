# The four Cloud Run functions (2nd gen). Terraform owns their triggers, identities, scaling and
# environment; Cloud Build redeploys the code (gcloud functions deploy --gen2 --source=.), so the
# source object and the deploy-tool label are ignored after creation. Every function only accepts
# internal traffic: Pub/Sub push, Eventarc and Cloud Scheduler all count as internal callers.
locals {
  runtime = "python311"

  functions = {
    ingest = {
      entry_point = "ingest"
      description = "Decodes job messages from the jobs topic (authenticated Pub/Sub push) into job records."
      sa          = var.service_accounts.ingest
      memory      = "512Mi"
      timeout     = 60
      max         = var.max_instances
      concurrency = 8
      env         = {}
    }
    on-upload = {
      entry_point = "on_upload"
      description = "Creates a job for each object finalized in the uploads bucket (Eventarc)."
      sa          = var.service_accounts.on-upload
      memory      = "512Mi"
      timeout     = 120
      max         = var.max_instances
      concurrency = 4
      env         = {}
    }
    on-job-written = {
      entry_point = "on_job_written"
      description = "Reacts to jobs/{jobId} writes (Eventarc Firestore): dispatches queued jobs and publishes terminal results."
      sa          = var.service_accounts.on-job-written
      memory      = "512Mi"
      timeout     = 120
      max         = var.max_instances
      concurrency = 8
      env         = var.dispatch_env
    }
    sweeper = {
      entry_point = "sweeper"
      description = "Requeues jobs whose worker lease expired (Cloud Scheduler, every minute) and serves the internal control routes."
      sa          = var.service_accounts.sweeper
      memory      = "512Mi"
      timeout     = 300
      max         = 1
      concurrency = 1
      env         = var.dispatch_env
    }
  }
}

resource "google_cloudfunctions2_function" "this" {
  for_each = local.functions

  project     = var.project_id
  location    = var.region
  name        = each.key
  description = each.value.description
  labels      = var.labels

  build_config {
    runtime     = local.runtime
    entry_point = each.value.entry_point
    environment_variables = {
      GOOGLE_FUNCTION_SOURCE = "functions/${each.value.entry_point}.py"
    }
    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_object
      }
    }
  }

  service_config {
    service_account_email            = each.value.sa
    available_memory                 = each.value.memory
    available_cpu                    = "1"
    timeout_seconds                  = each.value.timeout
    min_instance_count               = 0
    max_instance_count               = each.value.max
    max_instance_request_concurrency = each.value.concurrency
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    environment_variables            = merge(var.common_env, each.value.env, { CODEX_CLOUD_SERVICE_NAME = each.key })

    # Every function loads shared/settings.py, which outside local/test refuses to start without
    # a real CODEX_CLOUD_TOKEN_SIGNING_KEY.
    dynamic "secret_environment_variables" {
      for_each = var.secret_env
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  dynamic "event_trigger" {
    for_each = each.key == "on-upload" ? [1] : []
    content {
      trigger_region        = var.storage_trigger_region
      event_type            = "google.cloud.storage.object.v1.finalized"
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = each.value.sa
      event_filters {
        attribute = "bucket"
        value     = var.uploads_bucket
      }
    }
  }

  dynamic "event_trigger" {
    for_each = each.key == "on-job-written" ? [1] : []
    content {
      trigger_region        = var.firestore_trigger_region
      event_type            = "google.cloud.firestore.document.v1.written"
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = each.value.sa
      event_filters {
        attribute = "database"
        value     = var.firestore_database
      }
      event_filters {
        attribute = "document"
        value     = "${var.jobs_collection}/{jobId}"
        operator  = "match-path-pattern"
      }
    }
  }

  lifecycle {
    ignore_changes = [
      build_config[0].source,
      build_config[0].docker_repository,
      labels["deployment-tool"],
      service_config[0].environment_variables["LOG_EXECUTION_ID"],
    ]
  }
}

# Who may invoke each function's underlying Cloud Run service.
resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = merge(
    { for m in var.sweeper_invokers : "sweeper|${m}" => { fn = "sweeper", member = m } },
    { "ingest|push" = { fn = "ingest", member = "serviceAccount:${var.push_service_account}" } },
    { "on-upload|self" = { fn = "on-upload", member = "serviceAccount:${var.service_accounts.on-upload}" } },
    { "on-job-written|self" = { fn = "on-job-written", member = "serviceAccount:${var.service_accounts.on-job-written}" } },
    { "sweeper|scheduler" = { fn = "sweeper", member = "serviceAccount:${var.scheduler_service_account}" } },
  )

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this[each.value.fn].name
  role     = "roles/run.invoker"
  member   = each.value.member
}
