# Alert policies on the Prometheus metrics the services export (shared/metrics.py, collected by
# Managed Service for Prometheus) plus the Pub/Sub dead-letter backlog, and the dashboard from
# monitoring/dashboards. monitoring/rules/alerts.yaml holds the same alerts as a Prometheus rule
# file for self-managed Prometheus and for promtool checks.
locals {
  channels = concat(
    var.notification_channel_ids,
    [for c in google_monitoring_notification_channel.email : c.id],
  )

  promql_alerts = {
    high_error_rate = {
      name     = "HighErrorRate"
      severity = "ERROR"
      duration = "300s"
      query    = "sum by (service) (rate(http_requests_total{status=~\"5..\"}[5m])) / sum by (service) (rate(http_requests_total[5m])) > ${var.error_rate_threshold}"
      doc      = "More than ${var.error_rate_threshold * 100}% of HTTP responses are 5xx. Check the service logs for the failing route."
    }
    high_latency = {
      name     = "HighLatency"
      severity = "WARNING"
      duration = "600s"
      query    = "histogram_quantile(0.95, sum by (le, service) (rate(http_request_duration_seconds_bucket{route!~\".*(stream|events|ws).*\"}[5m]))) > ${var.latency_p95_seconds}"
      doc      = "p95 latency of non-streaming routes is above ${var.latency_p95_seconds}s."
    }
    worker_down = {
      name     = "WorkerUnhealthy"
      severity = "CRITICAL"
      duration = "300s"
      query    = "sum(codex_worker_slots) == 0 or absent(codex_worker_slots)"
      doc      = "No worker pod reports job slots: the worker pool is down or not scraped. Check the codex-worker StatefulSet."
    }
    stuck_jobs = {
      name     = "StuckJobs"
      severity = "WARNING"
      duration = "600s"
      query    = "max(codex_stuck_jobs) > ${var.stuck_jobs_threshold}"
      doc      = "Jobs are past their lease or deadline for 10 minutes: the sweeper or dispatch is not keeping up."
    }
    dead_letters = {
      name     = "DeadLetterRate"
      severity = "WARNING"
      duration = "0s"
      query    = "sum by (source) (increase(codex_dead_letter_total[15m])) > ${var.dead_letter_threshold}"
      doc      = "Inputs are being rejected permanently. Inspect the reason label and the DLQ audit subscription."
    }
  }
}

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.notification_emails)

  project      = var.project_id
  display_name = "codex-cloud ${var.environment} alerts (${each.value})"
  type         = "email"
  labels = {
    email_address = each.value
  }
}

resource "google_monitoring_alert_policy" "promql" {
  for_each = local.promql_alerts

  project               = var.project_id
  display_name          = "codex-cloud ${var.environment}: ${each.value.name}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = local.channels
  user_labels = {
    environment = var.environment
  }

  conditions {
    display_name = each.value.name
    condition_prometheus_query_language {
      query               = each.value.query
      duration            = each.value.duration
      evaluation_interval = "60s"
      alert_rule          = each.value.name
    }
  }

  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

# Messages waiting on the dead-letter audit subscriptions (Pub/Sub system metric).
resource "google_monitoring_alert_policy" "dead_letter_depth" {
  project               = var.project_id
  display_name          = "codex-cloud ${var.environment}: DeadLetterDepth"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.channels
  user_labels = {
    environment = var.environment
  }

  conditions {
    display_name = "Undelivered messages on dead-letter subscriptions"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.label.subscription_id = one_of(${join(", ", [for s in var.dead_letter_subscriptions : "\"${s}\""])})"
      comparison      = "COMPARISON_GT"
      threshold_value = var.dead_letter_depth_threshold
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "Messages are piling up in a dead-letter subscription. Each carries CloudPubSubDeadLetterSource* attributes naming the source subscription."
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_dashboard" "this" {
  project        = var.project_id
  dashboard_json = var.dashboard_json
}
