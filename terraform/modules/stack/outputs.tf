output "gateway_url" {
  description = "Public API base URL: the API Gateway when configured, otherwise the Cloud Run URL."
  value       = var.api_gateway_hostname != null ? "https://${var.api_gateway_hostname}" : module.api.uri
}

output "api_audience" {
  description = "Audience of the ID token API Gateway sends the api (api-gateway.yaml's $${API_AUDIENCE})."
  value       = local.api_run_url
}

output "api_url" {
  description = "Cloud Run URL of the api service."
  value       = module.api.uri
}

output "websocket_url" {
  description = "WebSocket base URL (clients connect to Cloud Run directly; API Gateway does not proxy WebSockets)."
  value       = replace(module.api.uri, "https://", "wss://")
}

output "worker_url" {
  description = "HTTPS base URL of the worker pool (Ingress)."
  value       = module.gke.worker_url
}

output "worker_auth" {
  description = "What the worker checks on every call but its probes (CODEX_CLOUD_WORKER_OIDC_AUDIENCE and CODEX_CLOUD_WORKER_ALLOWED_CALLERS in k8s/configmap.yaml)."
  value = {
    audience        = module.gke.worker_url
    allowed_callers = join(",", local.worker_callers)
  }
}

output "worker_ingress_ip" {
  description = "Create an A record worker_hostname -> this address."
  value       = module.gke.worker_address
}

output "worker_ingress_address_name" {
  description = "Global address name used by k8s/ingress.yaml."
  value       = module.gke.worker_address_name
}

output "worker_certificate_name" {
  description = "Managed certificate name used by k8s/ingress.yaml."
  value       = module.gke.worker_certificate_name
}

output "redis_connection" {
  description = "rediss:// URL with the AUTH string (also stored in the redis-url secret)."
  value       = module.redis.url
  sensitive   = true
}

output "redis_ca_certs" {
  description = "CA certificates for Redis TLS."
  value       = module.redis.server_ca_certs
}

output "bucket_urls" {
  description = "gs:// URLs by topology key."
  value       = module.storage.urls
}

output "sources_bucket" {
  description = "Bucket for the bootstrap function source archive."
  value       = module.storage.sources_bucket
}

output "function_uris" {
  description = "Function URIs by name."
  value       = module.functions.uris
}

output "service_accounts" {
  description = "Service account emails by short name."
  value       = module.iam.emails
}

output "gke_cluster" {
  description = "Cluster name, location and DNS endpoint."
  value = {
    name         = module.gke.cluster_name
    location     = module.gke.cluster_location
    dns_endpoint = module.gke.dns_endpoint
  }
}

output "artifact_registry" {
  description = "Docker repository path for images."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "workflow_name" {
  description = "Long-job workflow name."
  value       = module.workflows.workflow_name
}
