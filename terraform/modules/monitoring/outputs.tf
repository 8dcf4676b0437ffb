output "alert_policy_ids" {
  description = "Alert policy ids by logical name."
  value = merge(
    { for k, p in google_monitoring_alert_policy.promql : k => p.id },
    {
      stuck_jobs        = google_monitoring_alert_policy.log_metric["stuck_jobs"].id
      dead_letters      = google_monitoring_alert_policy.log_metric["dead_letters"].id
      dead_letter_depth = google_monitoring_alert_policy.dead_letter_depth.id
    },
  )
}

output "dashboard_id" {
  description = "Dashboard id."
  value       = google_monitoring_dashboard.this.id
}
