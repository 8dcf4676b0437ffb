variable "project_id" {
  description = "Project that owns the service."
  type        = string
}

variable "region" {
  description = "Cloud Run region."
  type        = string
}

variable "name" {
  description = "Service name."
  type        = string
  default     = "api"
}

variable "labels" {
  description = "Labels applied to the service."
  type        = map(string)
  default     = {}
}

variable "image" {
  description = "Initial container image (Cloud Build deploys later images)."
  type        = string

  validation {
    condition     = !endswith(var.image, ":latest") && length(regexall(":[^/]+$|@sha256:", var.image)) > 0
    error_message = "image must be pinned by a tag other than latest or by digest."
  }
}

variable "metrics_sidecar_image" {
  description = "Managed Prometheus sidecar image for Cloud Run."
  type        = string
}

variable "service_account_email" {
  description = "Runtime identity of the API."
  type        = string
}

variable "network_id" {
  description = "VPC for direct egress (Memorystore)."
  type        = string
}

variable "subnet_id" {
  description = "Subnet for direct egress."
  type        = string
}

variable "min_instances" {
  description = "Instances kept warm."
  type        = number
  default     = 1

  validation {
    condition     = var.min_instances >= 0 && var.min_instances <= 100
    error_message = "min_instances must be between 0 and 100."
  }
}

variable "max_instances" {
  description = "Upper bound of instances."
  type        = number
  default     = 20

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 1000
    error_message = "max_instances must be between 1 and 1000."
  }
}

variable "concurrency" {
  description = "Concurrent requests per instance (open streams count)."
  type        = number
  default     = 250

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000."
  }
}

variable "cpu" {
  description = "CPU limit of the API container."
  type        = string
  default     = "1"
}

variable "memory" {
  description = "Memory limit of the API container."
  type        = string
  default     = "1Gi"
}

variable "env" {
  description = "Plain environment variables (CODEX_CLOUD_* settings)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.env) : startswith(k, "CODEX_CLOUD_")])
    error_message = "Settings variables must use the CODEX_CLOUD_ prefix."
  }
}

variable "secret_env" {
  description = "Environment variables read from Secret Manager: variable name => secret id."
  type        = map(string)
  default     = {}
}

variable "public" {
  description = "Allow unauthenticated invocation (the API checks API keys itself)."
  type        = bool
  default     = true
}

variable "invokers" {
  description = "Extra IAM members granted run.invoker (for example the API Gateway identity)."
  type        = list(string)
  default     = []
}

variable "deletion_protection" {
  description = "Refuse to delete the service from terraform."
  type        = bool
  default     = false
}

variable "secret_files" {
  description = "Secrets mounted as files: volume name => secret id, directory and file name."
  type = map(object({
    secret     = string
    mount_path = string
    file_name  = string
  }))
  default = {}
}
