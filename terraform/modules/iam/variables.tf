variable "project_id" {
  description = "Project that owns the service accounts."
  type        = string
}

variable "account_prefix" {
  description = "Prefix for account ids (account ids are 6-30 characters)."
  type        = string
  default     = "codex-"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,12}$", var.account_prefix))
    error_message = "account_prefix must be at most 13 lowercase letters, digits or dashes."
  }
}

variable "service_accounts" {
  description = "Service accounts to create, keyed by short name, with their project-level roles."
  type = map(object({
    display_name  = string
    description   = optional(string, "")
    project_roles = optional(list(string), [])
  }))

  validation {
    condition = alltrue(flatten([
      for sa in values(var.service_accounts) : [
        for role in sa.project_roles : !contains(["roles/owner", "roles/editor", "roles/viewer"], role)
      ]
    ]))
    error_message = "Primitive roles (owner, editor, viewer) are not allowed."
  }
}
