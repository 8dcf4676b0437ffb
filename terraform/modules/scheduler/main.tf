# Cloud Scheduler calls the sweeper function every minute with an OIDC token minted for the
# scheduler service account (audience = the function URL, which Cloud Run verifies).
resource "google_cloud_scheduler_job" "sweeper" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}codex-sweeper"
  description      = "Requeue or fail jobs whose worker lease or deadline expired."
  schedule         = var.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "320s"

  retry_config {
    retry_count          = 0
    min_backoff_duration = "5s"
    max_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    uri         = var.sweeper_uri
    body        = base64encode("{}")
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = var.service_account_email
      audience              = var.sweeper_uri
    }
  }
}
