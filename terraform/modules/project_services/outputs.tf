output "services" {
  description = "Enabled service names; depend on this to order resources after API enablement."
  value       = [for s in google_project_service.this : s.service]
}
