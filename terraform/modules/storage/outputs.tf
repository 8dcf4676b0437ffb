output "names" {
  description = "Bucket names by topology key."
  value       = { for k, b in google_storage_bucket.this : k => b.name }
}

output "urls" {
  description = "gs:// URLs by topology key."
  value       = { for k, b in google_storage_bucket.this : k => b.url }
}

output "sources_bucket" {
  description = "Bucket for function source archives."
  value       = google_storage_bucket.sources.name
}
