output "gateway_url" {
  description = "Public API base URL."
  value       = module.codex_cloud.gateway_url
}

output "api_audience" {
  description = "Audience of the ID token API Gateway sends the api (api-gateway.yaml's $${API_AUDIENCE})."
  value       = module.codex_cloud.api_audience
}

output "api_url" {
  description = "Cloud Run URL of the api."
  value       = module.codex_cloud.api_url
}

output "websocket_url" {
  description = "WebSocket base URL."
  value       = module.codex_cloud.websocket_url
}

output "worker_url" {
  description = "Worker pool base URL."
  value       = module.codex_cloud.worker_url
}

output "worker_auth" {
  description = "Audience and allowed callers the worker checks (k8s/configmap.yaml)."
  value       = module.codex_cloud.worker_auth
}

output "worker_ingress_ip" {
  description = "Point worker_hostname at this address."
  value       = module.codex_cloud.worker_ingress_ip
}

output "redis_connection" {
  description = "rediss:// URL with AUTH."
  value       = module.codex_cloud.redis_connection
  sensitive   = true
}

output "bucket_urls" {
  description = "Bucket URLs by topology key."
  value       = module.codex_cloud.bucket_urls
}

output "sources_bucket" {
  description = "Bucket for the bootstrap function source archive."
  value       = module.codex_cloud.sources_bucket
}

output "service_accounts" {
  description = "Service account emails."
  value       = module.codex_cloud.service_accounts
}

output "gke_cluster" {
  description = "Cluster name, location and DNS endpoint."
  value       = module.codex_cloud.gke_cluster
}

output "artifact_registry" {
  description = "Docker repository path."
  value       = module.codex_cloud.artifact_registry
}
