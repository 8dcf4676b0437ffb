variable "project_id" {
  description = "Project that owns the policies."
  type        = string
}

variable "environment" {
  description = "Environment name shown in policy names."
  type        = string
}

variable "notification_channel_ids" {
  description = "Existing notification channel ids (projects/…/notificationChannels/…)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channel_ids : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "Each id must look like projects/P/notificationChannels/N."
  }
}

variable "notification_emails" {
  description = "Email addresses to create notification channels for."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.notification_emails : can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", e))])
    error_message = "notification_emails must be email addresses."
  }
}

variable "dead_letter_subscriptions" {
  description = "Subscription ids that read dead-letter topics."
  type        = list(string)

  validation {
    condition     = length(var.dead_letter_subscriptions) > 0
    error_message = "At least one dead-letter subscription is required."
  }
}

variable "dashboard_json" {
  description = "Cloud Monitoring dashboard definition (JSON)."
  type        = string

  validation {
    condition     = can(jsondecode(var.dashboard_json))
    error_message = "dashboard_json must be valid JSON."
  }
}

variable "error_rate_threshold" {
  description = "Fraction of 5xx responses that fires HighErrorRate."
  type        = number
  default     = 0.05

  validation {
    condition     = var.error_rate_threshold > 0 && var.error_rate_threshold < 1
    error_message = "error_rate_threshold must be between 0 and 1."
  }
}

variable "latency_p95_seconds" {
  description = "p95 latency (seconds) that fires HighLatency."
  type        = number
  default     = 2

  validation {
    condition     = var.latency_p95_seconds > 0
    error_message = "latency_p95_seconds must be positive."
  }
}

variable "stuck_jobs_threshold" {
  description = "Stuck jobs tolerated before StuckJobs fires."
  type        = number
  default     = 0

  validation {
    condition     = var.stuck_jobs_threshold >= 0
    error_message = "stuck_jobs_threshold must be >= 0."
  }
}

variable "dead_letter_threshold" {
  description = "Dead-lettered inputs per 15 minutes that fire DeadLetterRate."
  type        = number
  default     = 10

  validation {
    condition     = var.dead_letter_threshold >= 0
    error_message = "dead_letter_threshold must be >= 0."
  }
}

variable "dead_letter_depth_threshold" {
  description = "Undelivered messages on a dead-letter subscription that fire DeadLetterDepth."
  type        = number
  default     = 0

  validation {
    condition     = var.dead_letter_depth_threshold >= 0
    error_message = "dead_letter_depth_threshold must be >= 0."
  }
}
