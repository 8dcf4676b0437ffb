output "emails" {
  description = "Service account emails by short name."
  value       = { for k, sa in google_service_account.this : k => sa.email }
}

output "members" {
  description = "IAM members (serviceAccount:EMAIL) by short name."
  value       = { for k, sa in google_service_account.this : k => sa.member }
}

output "ids" {
  description = "Fully qualified service account ids by short name."
  value       = { for k, sa in google_service_account.this : k => sa.name }
}
