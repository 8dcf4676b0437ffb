# Memorystore for Redis: per-key rate limits and short-lived caches. AUTH is on and traffic is
# TLS (SERVER_AUTHENTICATION): clients connect with rediss:// and trust server_ca_certs, which the
# services mount as a file at var.ca_cert_path (the URL names it with ssl_ca_certs).
resource "google_redis_instance" "this" {
  #checkov:skip=CKV_GCP_95:Google-managed encryption at rest; see docs/decisions/0004-google-managed-encryption.md
  project                 = var.project_id
  region                  = var.region
  name                    = var.name
  display_name            = "codex-cloud rate limits and caches"
  tier                    = var.tier
  memory_size_gb          = var.memory_size_gb
  redis_version           = "REDIS_7_2"
  authorized_network      = var.network_id
  connect_mode            = "DIRECT_PEERING"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  labels                  = var.labels

  redis_configs = {
    maxmemory-policy = "allkeys-lru"
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = 3
        minutes = 0
        seconds = 0
        nanos   = 0
      }
    }
  }
}
