variable "project_id" {
  description = "Project that owns the topics."
  type        = string
}

variable "project_number" {
  description = "Project number (for the Pub/Sub service agent)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+$", var.project_number))
    error_message = "project_number must be digits."
  }
}

variable "topology" {
  description = "Decoded shared/topology.yaml."
  type        = any
}

variable "name_prefix" {
  description = "Prefix prepended to every logical name from the topology."
  type        = string
  default     = ""
}

variable "labels" {
  description = "Labels applied to topics and subscriptions."
  type        = map(string)
  default     = {}
}

variable "attach_job_schema" {
  description = "Attach the AVRO broker-side schema (JSON encoding) to the jobs topic."
  type        = bool
  default     = true
}

variable "push_endpoints" {
  description = "Subscriptions (by topology key) delivered by authenticated push instead of pull."
  type = map(object({
    endpoint              = string
    service_account_email = string
    audience              = string
  }))
  default = {}

  validation {
    condition     = alltrue([for p in values(var.push_endpoints) : startswith(p.endpoint, "https://")])
    error_message = "Push endpoints must be HTTPS."
  }
}

variable "topic_publishers" {
  description = "Publisher grants on single topics (topology key + IAM member)."
  type = list(object({
    topic  = string
    member = string
  }))
  default = []
}

variable "subscription_subscribers" {
  description = "Subscriber grants on single subscriptions (topology key + IAM member)."
  type = list(object({
    subscription = string
    member       = string
  }))
  default = []
}
