output "cluster_name" {
  description = "Cluster name."
  value       = google_container_cluster.this.name
}

output "cluster_location" {
  description = "Cluster location."
  value       = google_container_cluster.this.location
}

output "dns_endpoint" {
  description = "IAM-authenticated DNS endpoint of the control plane."
  value       = google_container_cluster.this.control_plane_endpoints_config[0].dns_endpoint_config[0].endpoint
}

output "node_service_account" {
  description = "Email of the node service account."
  value       = google_service_account.nodes.email
}

output "worker_address" {
  description = "Global IP of the worker Ingress (create an A record for worker_hostname)."
  value       = google_compute_global_address.worker.address
}

output "worker_address_name" {
  description = "Name of the global address (k8s/ingress.yaml annotation)."
  value       = google_compute_global_address.worker.name
}

output "worker_certificate_name" {
  description = "Name of the managed certificate (k8s/ingress.yaml annotation)."
  value       = google_compute_managed_ssl_certificate.worker.name
}

output "worker_url" {
  description = "HTTPS base URL of the worker pool."
  value       = "https://${var.worker_hostname}"
}
