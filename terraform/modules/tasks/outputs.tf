output "queue_names" {
  description = "Queue short names by topology key."
  value       = { for k, q in google_cloud_tasks_queue.this : k => q.name }
}

output "queue_ids" {
  description = "Queue ids by topology key."
  value       = { for k, q in google_cloud_tasks_queue.this : k => q.id }
}
