variable "project_id" {
  description = "Project that owns the network."
  type        = string
}

variable "region" {
  description = "Region of the subnets, router and NAT."
  type        = string
}

variable "name" {
  description = "Base name for network resources."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be lowercase letters, digits and dashes (2-41 characters)."
  }
}

variable "gke_nodes_cidr" {
  description = "Primary range of the GKE subnet (nodes)."
  type        = string
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrhost(var.gke_nodes_cidr, 0))
    error_message = "gke_nodes_cidr must be a CIDR block."
  }
}

variable "gke_pods_cidr" {
  description = "Secondary range for pods."
  type        = string
  default     = "10.20.0.0/16"

  validation {
    condition     = can(cidrhost(var.gke_pods_cidr, 0))
    error_message = "gke_pods_cidr must be a CIDR block."
  }
}

variable "gke_services_cidr" {
  description = "Secondary range for cluster services."
  type        = string
  default     = "10.30.0.0/20"

  validation {
    condition     = can(cidrhost(var.gke_services_cidr, 0))
    error_message = "gke_services_cidr must be a CIDR block."
  }
}

variable "run_egress_cidr" {
  description = "Subnet used by Cloud Run direct VPC egress (at least a /26)."
  type        = string
  default     = "10.40.0.0/24"

  validation {
    condition     = can(cidrhost(var.run_egress_cidr, 0)) && tonumber(split("/", var.run_egress_cidr)[1]) <= 26
    error_message = "run_egress_cidr must be a CIDR block of /26 or larger."
  }
}
