variable "project_id" {
  description = "Project that owns the buckets."
  type        = string
}

variable "location" {
  description = "Bucket location (region); the Eventarc storage trigger must use the same region."
  type        = string
}

variable "topology" {
  description = "Decoded shared/topology.yaml."
  type        = any
}

variable "name_prefix" {
  description = "Prefix prepended to every bucket name (bucket names are global: include the project)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,40}-$", var.name_prefix))
    error_message = "name_prefix must be lowercase, end with '-' and be at most 42 characters."
  }
}

variable "labels" {
  description = "Labels applied to the buckets."
  type        = map(string)
  default     = {}
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete non-empty buckets (dev only)."
  type        = bool
  default     = false
}

variable "access_log_days" {
  description = "Days to keep bucket access logs."
  type        = number
  default     = 90

  validation {
    condition     = var.access_log_days >= 1 && var.access_log_days <= 3650
    error_message = "access_log_days must be between 1 and 3650."
  }
}

variable "bucket_grants" {
  description = "Per-bucket IAM grants: topology key, role, member, and optionally an object name prefix the grant is limited to (IAM condition)."
  type = list(object({
    bucket        = string
    role          = string
    member        = string
    object_prefix = optional(string)
  }))
  default = []

  validation {
    condition     = alltrue([for g in var.bucket_grants : !contains(["allUsers", "allAuthenticatedUsers"], g.member)])
    error_message = "Buckets are never public."
  }

  validation {
    condition     = alltrue([for g in var.bucket_grants : g.object_prefix == null ? true : can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/$", g.object_prefix))])
    error_message = "object_prefix must be a relative object name prefix ending with '/' (no quotes)."
  }
}
