variable "project_id" {
  description = "GCP project id of the dev environment."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id."
  }
}

variable "region" {
  description = "Region for regional resources."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like europe-west1."
  }
}

variable "zone_suffix" {
  description = "Zone letter of the zonal dev cluster."
  type        = string
  default     = "b"

  validation {
    condition     = can(regex("^[a-z]$", var.zone_suffix))
    error_message = "zone_suffix must be a single letter."
  }
}

variable "firestore_location" {
  description = "Firestore location (region or multi-region)."
  type        = string
  default     = "europe-west1"
}

variable "name_prefix" {
  description = "Prefix for topology names; defaults to '<project_id>-'."
  type        = string
  default     = null

  validation {
    condition     = var.name_prefix == null || can(regex("^[a-z0-9][a-z0-9-]{0,40}-$", var.name_prefix))
    error_message = "name_prefix must end with '-' and use lowercase letters, digits and dashes."
  }
}

variable "worker_hostname" {
  description = "DNS name of the worker Ingress."
  type        = string
}

variable "api_image" {
  description = "Initial api image (REGION-docker.pkg.dev/PROJECT/codex-cloud/api:TAG)."
  type        = string

  validation {
    condition     = !endswith(var.api_image, ":latest")
    error_message = "Pin the api image to a tag or digest."
  }
}

variable "notification_emails" {
  description = "Alert recipients."
  type        = list(string)
  default     = []
}

variable "notification_channel_ids" {
  description = "Existing notification channel ids."
  type        = list(string)
  default     = []
}

variable "trust_gateway_userinfo" {
  description = "Let the API accept the identity API Gateway forwards, on requests carrying the gateway's ID token."
  type        = bool
  default     = false
}

variable "api_gateway_hostname" {
  description = "API Gateway default hostname once created (docs/deploy.md)."
  type        = string
  default     = null
}
