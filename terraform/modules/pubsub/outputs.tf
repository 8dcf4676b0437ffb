output "topic_ids" {
  description = "Topic ids by topology key."
  value       = { for k, t in google_pubsub_topic.this : k => t.id }
}

output "topic_names" {
  description = "Topic names by topology key."
  value       = { for k, t in google_pubsub_topic.this : k => t.name }
}

output "subscription_names" {
  description = "Subscription names by topology key."
  value       = { for k, s in google_pubsub_subscription.this : k => s.name }
}

output "job_schema_id" {
  description = "Id of the AVRO job message schema."
  value       = google_pubsub_schema.job_message.id
}
