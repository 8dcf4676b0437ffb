variable "project_id" {
  description = "Project that owns the workflow."
  type        = string
}

variable "region" {
  description = "Workflows region."
  type        = string
}

variable "name_prefix" {
  description = "Prefix for the workflow name."
  type        = string
  default     = ""
}

variable "service_account_email" {
  description = "Identity the workflow executes as."
  type        = string
}

variable "source_contents" {
  description = "Workflow definition (YAML)."
  type        = string

  validation {
    condition     = length(trimspace(var.source_contents)) > 0
    error_message = "source_contents must not be empty."
  }
}

variable "labels" {
  description = "Labels applied to the workflow."
  type        = map(string)
  default     = {}
}

variable "deletion_protection" {
  description = "Refuse to delete the workflow from terraform."
  type        = bool
  default     = false
}
