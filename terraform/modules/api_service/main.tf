# The public HTTP API (REST + WebSocket + SSE) as a Cloud Run service. Streams need long request
# timeouts and session affinity (a reconnecting client lands on the instance holding its
# listener); min instances keep first-byte latency low. Redis is reached over direct VPC egress.
# Cloud Build deploys new images (gcloud run deploy), so the image is ignored after creation.
resource "google_cloud_run_v2_service" "api" {
  project             = var.project_id
  location            = var.region
  name                = var.name
  description         = "codex-cloud HTTP API, WebSocket and SSE streams."
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection
  labels              = var.labels

  template {
    service_account                  = var.service_account_email
    timeout                          = "3600s"
    session_affinity                 = true
    max_instance_request_concurrency = var.concurrency
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"
      network_interfaces {
        network    = var.network_id
        subnetwork = var.subnet_id
      }
    }

    containers {
      name  = "api"
      image = var.image

      ports {
        name           = "http1"
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = false
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = var.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = var.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      dynamic "volume_mounts" {
        for_each = var.secret_files
        content {
          name       = volume_mounts.key
          mount_path = volume_mounts.value.mount_path
        }
      }

      startup_probe {
        http_get {
          path = "/ready"
          port = 8080
        }
        period_seconds    = 2
        failure_threshold = 30
      }

      liveness_probe {
        http_get {
          path = "/health"
          port = 8080
        }
        period_seconds = 30
      }
    }

    dynamic "volumes" {
      for_each = var.secret_files
      content {
        name = volumes.key
        secret {
          secret = volumes.value.secret
          items {
            path    = volumes.value.file_name
            version = "latest"
          }
        }
      }
    }

    # Managed Service for Prometheus sidecar: scrapes localhost:8080/metrics (http_* metrics).
    containers {
      name       = "metrics"
      image      = var.metrics_sidecar_image
      depends_on = ["api"]

      resources {
        limits = {
          cpu    = "250m"
          memory = "256Mi"
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
    ]
  }
}

# The API authenticates callers itself (API keys, signed stream tokens). WebSocket and SSE
# clients connect to the service URL directly because API Gateway does not proxy WebSockets.
resource "google_cloud_run_v2_service_iam_member" "public" {
  count = var.public ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = toset(var.invokers)

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.api.name
  role     = "roles/run.invoker"
  member   = each.value
}
