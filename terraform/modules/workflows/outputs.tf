output "workflow_id" {
  description = "Workflow id."
  value       = google_workflows_workflow.long_job.id
}

output "workflow_name" {
  description = "Workflow name."
  value       = google_workflows_workflow.long_job.name
}
