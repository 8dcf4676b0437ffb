output "job_id" {
  description = "Scheduler job id."
  value       = google_cloud_scheduler_job.sweeper.id
}
