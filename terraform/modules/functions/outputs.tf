output "uris" {
  description = "HTTPS URIs by function name."
  value       = { for k, f in google_cloudfunctions2_function.this : k => f.service_config[0].uri }
}

output "names" {
  description = "Function names."
  value       = { for k, f in google_cloudfunctions2_function.this : k => f.name }
}
