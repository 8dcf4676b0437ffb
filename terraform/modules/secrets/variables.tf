variable "project_id" {
  description = "Project that owns the secrets."
  type        = string
}

variable "region" {
  description = "Replica location of every secret."
  type        = string
}

variable "name_prefix" {
  description = "Prefix prepended to every secret id."
  type        = string
  default     = ""
}

variable "labels" {
  description = "Labels applied to the secrets."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Secrets keyed by logical id, with the IAM members allowed to read them."
  type = map(object({
    accessors = list(string)
  }))

  validation {
    condition     = alltrue([for k in keys(var.secrets) : can(regex("^[a-z][a-z0-9-]{1,60}$", k))])
    error_message = "Secret ids must be lowercase letters, digits and dashes."
  }
}

variable "generated_values" {
  description = "Secret values computed by terraform, keyed by logical id (must be a key of secrets)."
  type        = map(string)
  default     = {}
  sensitive   = true
}
