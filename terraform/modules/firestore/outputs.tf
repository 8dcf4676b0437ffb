output "database_name" {
  description = "Database name."
  value       = google_firestore_database.this.name
}

output "location" {
  description = "Database location (Firestore Eventarc triggers must use it as trigger region)."
  value       = google_firestore_database.this.location_id
}

output "index_ids" {
  description = "Composite index ids by logical name."
  value       = { for k, i in google_firestore_index.this : k => i.id }
}
