variable "project_id" {
  description = "Project that owns the functions."
  type        = string
}

variable "region" {
  description = "Functions region."
  type        = string
}

variable "labels" {
  description = "Labels applied to the functions."
  type        = map(string)
  default     = {}
}

variable "source_bucket" {
  description = "Bucket holding the initial source archive (Cloud Build redeploys afterwards)."
  type        = string
}

variable "source_object" {
  description = "Object name of the initial source archive (a zip of the repository)."
  type        = string
  default     = "functions/bootstrap.zip"

  validation {
    condition     = endswith(var.source_object, ".zip")
    error_message = "source_object must be a .zip archive."
  }
}

variable "service_accounts" {
  description = "Runtime service account emails for ingest, on-upload, on-job-written and sweeper."
  type = object({
    ingest         = string
    on-upload      = string
    on-job-written = string
    sweeper        = string
  })
}

variable "push_service_account" {
  description = "Email of the identity Pub/Sub uses to push to ingest."
  type        = string
}

variable "scheduler_service_account" {
  description = "Email of the identity Cloud Scheduler uses to call the sweeper."
  type        = string
}

variable "sweeper_invokers" {
  description = "Extra IAM members allowed to call the sweeper's control routes (Workflows, Cloud Tasks)."
  type        = list(string)
  default     = []
}

variable "common_env" {
  description = "Environment variables every function gets (CODEX_CLOUD_* settings)."
  type        = map(string)

  validation {
    condition     = alltrue([for k in keys(var.common_env) : startswith(k, "CODEX_CLOUD_")])
    error_message = "Settings variables must use the CODEX_CLOUD_ prefix."
  }
}

variable "secret_env" {
  description = "Environment variables every function reads from Secret Manager: variable name => secret id (the function's service account needs secretAccessor on it)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.secret_env) : startswith(k, "CODEX_CLOUD_")])
    error_message = "Settings variables must use the CODEX_CLOUD_ prefix."
  }
}

variable "dispatch_env" {
  description = "Extra environment for the functions that dispatch to the worker pool."
  type        = map(string)
  default     = {}
}

variable "uploads_bucket" {
  description = "Name of the uploads bucket (Eventarc storage trigger filter)."
  type        = string
}

variable "storage_trigger_region" {
  description = "Region of the uploads bucket (the storage trigger must match it)."
  type        = string
}

variable "firestore_trigger_region" {
  description = "Location of the Firestore database (the Firestore trigger must match it)."
  type        = string
}

variable "firestore_database" {
  description = "Firestore database id."
  type        = string
  default     = "(default)"
}

variable "jobs_collection" {
  description = "Jobs collection name (from the topology)."
  type        = string
}

variable "max_instances" {
  description = "Upper bound of instances per event-driven function."
  type        = number
  default     = 20

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 1000
    error_message = "max_instances must be between 1 and 1000."
  }
}
