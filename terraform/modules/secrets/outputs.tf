output "secret_ids" {
  description = "Secret ids (short) by logical id."
  value       = { for k, s in google_secret_manager_secret.this : k => s.secret_id }
}

output "secret_names" {
  description = "Full secret resource names by logical id."
  value       = { for k, s in google_secret_manager_secret.this : k => s.name }
}
