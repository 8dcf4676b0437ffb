variable "project_id" {
  description = "Project that owns the job."
  type        = string
}

variable "region" {
  description = "Cloud Scheduler region."
  type        = string
}

variable "name_prefix" {
  description = "Prefix for the job name."
  type        = string
  default     = ""
}

variable "schedule" {
  description = "Cron schedule of the sweeper."
  type        = string
  default     = "* * * * *"

  validation {
    condition     = length(split(" ", var.schedule)) == 5
    error_message = "schedule must be a five-field cron expression."
  }
}

variable "sweeper_uri" {
  description = "HTTPS URI of the sweeper function."
  type        = string

  validation {
    condition     = startswith(var.sweeper_uri, "https://")
    error_message = "sweeper_uri must be HTTPS."
  }
}

variable "service_account_email" {
  description = "Identity whose OIDC token authenticates the call."
  type        = string
}
