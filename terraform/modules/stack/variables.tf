variable "project_id" {
  description = "GCP project id of this environment."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id."
  }
}

variable "environment" {
  description = "Environment name (dev or prod)."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "region" {
  description = "Region for regional resources (functions, Cloud Run, queues, buckets, Redis)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like europe-west1."
  }
}

variable "name_prefix" {
  description = "Per-deployment prefix added to every topology name (CODEX_CLOUD_NAME_PREFIX). Bucket names are global, so it should contain the project id."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,40}-$", var.name_prefix))
    error_message = "name_prefix must be lowercase letters, digits and dashes, end with '-' and be at most 42 characters."
  }
}

variable "labels" {
  description = "Extra labels applied to labelled resources."
  type        = map(string)
  default     = {}
}

variable "firestore_location" {
  description = "Firestore location (region or multi-region such as nam5/eur3)."
  type        = string
}

variable "gke_location" {
  description = "GKE location: a zone for a zonal cluster, a region for a regional one."
  type        = string
}

variable "worker_hostname" {
  description = "DNS name served by the worker Ingress (Cloud Tasks and Workflows call it)."
  type        = string
}

variable "worker_machine_type" {
  description = "Machine type of the worker node pool."
  type        = string
  default     = "e2-standard-4"
}

variable "worker_min_nodes" {
  description = "Minimum worker nodes per zone."
  type        = number
  default     = 1
}

variable "worker_max_nodes" {
  description = "Maximum worker nodes per zone."
  type        = number
  default     = 5
}

variable "redis_tier" {
  description = "Memorystore tier."
  type        = string
  default     = "BASIC"

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.redis_tier)
    error_message = "redis_tier must be BASIC or STANDARD_HA."
  }
}

variable "redis_memory_gb" {
  description = "Memorystore capacity (GiB)."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_memory_gb >= 1
    error_message = "redis_memory_gb must be at least 1."
  }
}

variable "api_image" {
  description = "Image of the api service at creation (Cloud Build deploys later ones)."
  type        = string
}

variable "metrics_sidecar_image" {
  description = "Managed Prometheus sidecar image for the Cloud Run api."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"
}

variable "api_min_instances" {
  description = "Warm api instances."
  type        = number
  default     = 1
}

variable "api_max_instances" {
  description = "Maximum api instances."
  type        = number
  default     = 20
}

variable "function_max_instances" {
  description = "Maximum instances per event-driven function."
  type        = number
  default     = 20
}

variable "function_source_object" {
  description = "Initial source archive object in the sources bucket."
  type        = string
  default     = "functions/bootstrap.zip"
}

variable "workflow_source" {
  description = "Contents of workflows/long_job.yaml."
  type        = string
}

variable "dashboard_json" {
  description = "Contents of monitoring/dashboards/codex-cloud.json."
  type        = string
}

variable "attach_job_schema" {
  description = "Attach the AVRO broker-side schema to the jobs topic."
  type        = bool
  default     = true
}

variable "notification_channel_ids" {
  description = "Existing Cloud Monitoring notification channel ids for alerts."
  type        = list(string)
  default     = []
}

variable "notification_emails" {
  description = "Email addresses that receive alerts (a channel is created for each)."
  type        = list(string)
  default     = []
}

variable "trust_gateway_userinfo" {
  description = "Let the API accept the caller identity API Gateway forwards (X-Apigateway-Api-Userinfo) on requests carrying the gateway's ID token (decision 0206)."
  type        = bool
  default     = false
}

variable "api_gateway_hostname" {
  description = "Default hostname of the API Gateway gateway once created with gcloud (docs/deploy.md); null until then."
  type        = string
  default     = null

  validation {
    condition     = var.api_gateway_hostname == null || can(regex("^[a-z0-9.-]+$", var.api_gateway_hostname))
    error_message = "api_gateway_hostname must be a bare hostname (no scheme)."
  }
}
