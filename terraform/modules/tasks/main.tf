# Cloud Tasks queues from shared/topology.yaml: one per job priority plus webhooks. Rate limits
# and attempt counts come from the topology; backoff is set here. Task names are used for
# deduplication by the dispatcher (production Cloud Tasks refuses a name reused within ~1 hour of
# deletion or while the task exists; the local emulator does not).
locals {
  queues = {
    for key, q in var.topology.queues : key => {
      name         = "${var.name_prefix}${q.name}"
      rate         = q.max_dispatches_per_second
      concurrent   = q.max_concurrent_dispatches
      max_attempts = q.max_attempts
      webhook      = key == "webhooks"
    }
  }
}

resource "google_cloud_tasks_queue" "this" {
  for_each = local.queues

  project  = var.project_id
  location = var.region
  name     = each.value.name

  rate_limits {
    max_dispatches_per_second = each.value.rate
    max_concurrent_dispatches = each.value.concurrent
  }

  retry_config {
    max_attempts       = each.value.max_attempts
    min_backoff        = each.value.webhook ? "5s" : "2s"
    max_backoff        = each.value.webhook ? "3600s" : "300s"
    max_doublings      = each.value.webhook ? 8 : 5
    max_retry_duration = each.value.webhook ? "86400s" : "3600s"
  }

  stackdriver_logging_config {
    sampling_ratio = var.log_sampling_ratio
  }
}

resource "google_cloud_tasks_queue_iam_member" "enqueuers" {
  for_each = { for g in setproduct(keys(local.queues), var.enqueuers) : "${g[0]}|${g[1]}" => { queue = g[0], member = g[1] } }

  project  = var.project_id
  location = var.region
  name     = google_cloud_tasks_queue.this[each.value.queue].name
  role     = "roles/cloudtasks.enqueuer"
  member   = each.value.member
}
