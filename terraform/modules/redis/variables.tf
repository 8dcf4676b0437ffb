variable "project_id" {
  description = "Project that owns the instance."
  type        = string
}

variable "region" {
  description = "Instance region."
  type        = string
}

variable "name" {
  description = "Instance name."
  type        = string
  default     = "codex-cloud"
}

variable "tier" {
  description = "BASIC (single node) or STANDARD_HA (replicated with failover)."
  type        = string

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.tier)
    error_message = "tier must be BASIC or STANDARD_HA."
  }
}

variable "memory_size_gb" {
  description = "Capacity in GiB."
  type        = number

  validation {
    condition     = var.memory_size_gb >= 1 && var.memory_size_gb <= 300
    error_message = "memory_size_gb must be between 1 and 300."
  }
}

variable "network_id" {
  description = "VPC the instance peers with."
  type        = string
}

variable "labels" {
  description = "Labels applied to the instance."
  type        = map(string)
  default     = {}
}

variable "ca_cert_path" {
  description = "Path where clients mount the server CA certificates (referenced from the URL)."
  type        = string
  default     = "/etc/codex-cloud/redis/ca.pem"

  validation {
    condition     = startswith(var.ca_cert_path, "/")
    error_message = "ca_cert_path must be absolute."
  }
}
