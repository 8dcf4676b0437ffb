output "network_id" {
  description = "Self link id of the VPC."
  value       = google_compute_network.this.id
}

output "network_name" {
  description = "Name of the VPC."
  value       = google_compute_network.this.name
}

output "gke_subnet_id" {
  description = "Subnet id for GKE nodes."
  value       = google_compute_subnetwork.gke.id
}

output "gke_pods_range_name" {
  description = "Secondary range name for pods."
  value       = "pods"
}

output "gke_services_range_name" {
  description = "Secondary range name for services."
  value       = "services"
}

output "run_subnet_id" {
  description = "Subnet id for Cloud Run direct VPC egress."
  value       = google_compute_subnetwork.run.id
}

output "gke_nodes_cidr" {
  description = "Primary range of the GKE subnet."
  value       = google_compute_subnetwork.gke.ip_cidr_range
}
