# Alert policies on the Prometheus metrics the scraped processes export (shared/metrics.py,
# collected by Managed Service for Prometheus from the worker pods and the API's sidecar), on
# log-based metrics for what only the Cloud Run functions observe, plus the Pub/Sub dead-letter
# backlog, and the dashboard from monitoring/dashboards. monitoring/rules/alerts.yaml holds the
# same alerts as a Prometheus rule file for self-managed Prometheus and for promtool checks.
#
# Stuck jobs and dead letters are counted by the sweeper, ingest and on-upload functions. Their
# Prometheus collectors live in short-lived function instances that nothing scrapes, so those two
# alerts use log-based metrics on the structured lines the same code writes (shared/log.py
# LOG_METRIC_*: `log_metric` = "sweep" with `stuck`, `log_metric` = "dead_letter" with `source`
# and `reason`; tests/unit/test_log_metric_lines.py pins the shape).
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
  }

  # Functions (2nd gen) and the API run as Cloud Run services; their log entries, and so the
  # log-based metric series, have this monitored resource type.
  log_metric_resource = "cloud_run_revision"
}

# One point per sweep: the number of jobs that sweep found stuck (zero included).
resource "google_logging_metric" "stuck_jobs" {
  project     = var.project_id
  name        = "codex_sweep_stuck_jobs"
  description = "Jobs each sweep found past their lease, deadline or dispatch (sweeper function log lines)."
  filter      = "jsonPayload.log_metric=\"sweep\""

  value_extractor = "EXTRACT(jsonPayload.stuck)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "codex-cloud stuck jobs per sweep"
  }

  bucket_options {
    explicit_buckets {
      bounds = [0.5, 1.5, 2.5, 5.5, 10.5, 20.5, 50.5, 100.5, 200.5]
    }
  }
}

# One count per input rejected permanently (Pub/Sub message dead-lettered, upload rejected).
resource "google_logging_metric" "dead_letters" {
  project     = var.project_id
  name        = "codex_dead_letters"
  description = "Inputs rejected permanently and recorded with a reason (ingest and on-upload log lines)."
  filter      = "jsonPayload.log_metric=\"dead_letter\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "codex-cloud dead-lettered inputs"

    labels {
      key         = "source"
      value_type  = "STRING"
      description = "Input channel: pubsub or upload."
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Why the input was rejected (error code)."
    }
  }

  label_extractors = {
    source = "EXTRACT(jsonPayload.source)"
    reason = "EXTRACT(jsonPayload.reason)"
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

# Alerts on the log-based metrics above. StuckJobs: the mean number of stuck jobs per sweep
# stays above the threshold for 10 minutes (the sweeper runs every minute, so each 5-minute
# window holds about five sweeps). DeadLetterRate: more than the threshold of inputs rejected
# per source in 15 minutes.
locals {
  log_metric_alerts = {
    stuck_jobs = {
      name      = "StuckJobs"
      metric    = google_logging_metric.stuck_jobs.name
      threshold = var.stuck_jobs_threshold
      duration  = "600s"
      period    = "300s"
      aligner   = "ALIGN_MEAN"
      reducer   = "REDUCE_MAX"
      group_by  = []
      doc       = "Jobs are past their lease or deadline for 10 minutes: the sweeper or dispatch is not keeping up. The sweeper's \"sweep finished\" log lines list the jobs (requeued, failed, redispatched, timed_out, cancelled)."
    }
    dead_letters = {
      name      = "DeadLetterRate"
      metric    = google_logging_metric.dead_letters.name
      threshold = var.dead_letter_threshold
      duration  = "0s"
      period    = "900s"
      aligner   = "ALIGN_SUM"
      reducer   = "REDUCE_SUM"
      group_by  = ["metric.label.source"]
      doc       = "Inputs are being rejected permanently. The \"message dead-lettered\" / \"upload rejected\" log lines (jsonPayload.log_metric=\"dead_letter\") name the reason; see also the DLQ audit subscription and the uploads bucket's _errors/ reports."
    }
  }
}

resource "google_monitoring_alert_policy" "log_metric" {
  for_each = local.log_metric_alerts

  project               = var.project_id
  display_name          = "codex-cloud ${var.environment}: ${each.value.name}"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.channels
  user_labels = {
    environment = var.environment
  }

  conditions {
    display_name = each.value.name
    condition_threshold {
      filter          = "resource.type = \"${local.log_metric_resource}\" AND metric.type = \"logging.googleapis.com/user/${each.value.metric}\""
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = each.value.duration
      aggregations {
        alignment_period     = each.value.period
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.reducer
        group_by_fields      = each.value.group_by
      }
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
