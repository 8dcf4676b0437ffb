variable "project_id" {
  description = "Project that owns the queues."
  type        = string
}

variable "region" {
  description = "Cloud Tasks location."
  type        = string
}

variable "topology" {
  description = "Decoded shared/topology.yaml."
  type        = any
}

variable "name_prefix" {
  description = "Prefix prepended to every queue name."
  type        = string
  default     = ""
}

variable "log_sampling_ratio" {
  description = "Fraction of task operations logged (0.0 - 1.0)."
  type        = number
  default     = 0.1

  validation {
    condition     = var.log_sampling_ratio >= 0 && var.log_sampling_ratio <= 1
    error_message = "log_sampling_ratio must be between 0 and 1."
  }
}

variable "enqueuers" {
  description = "IAM members allowed to create tasks on every queue."
  type        = list(string)
  default     = []
}
