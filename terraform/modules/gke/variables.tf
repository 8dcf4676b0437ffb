variable "project_id" {
  description = "Project that owns the cluster."
  type        = string
}

variable "name" {
  description = "Cluster name (also a prefix for its node SA, address and certificate)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 lowercase letters, digits or dashes."
  }
}

variable "location" {
  description = "A region (regional cluster) or a zone (zonal cluster)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9](-[a-z])?$", var.location))
    error_message = "location must be a region (europe-west1) or a zone (europe-west1-b)."
  }
}

variable "network_id" {
  description = "VPC id."
  type        = string
}

variable "subnet_id" {
  description = "Subnet id for the nodes."
  type        = string
}

variable "pods_range_name" {
  description = "Secondary range name for pods."
  type        = string
}

variable "services_range_name" {
  description = "Secondary range name for services."
  type        = string
}

variable "master_cidr" {
  description = "/28 block for the control plane's private endpoint."
  type        = string
  default     = "172.16.0.0/28"

  validation {
    condition     = can(cidrhost(var.master_cidr, 0)) && endswith(var.master_cidr, "/28")
    error_message = "master_cidr must be a /28."
  }
}

variable "master_authorized_cidrs" {
  description = "Internal CIDRs allowed to reach the private control-plane IP endpoint."
  type        = list(string)
  default     = ["10.10.0.0/20"]

  validation {
    condition     = alltrue([for c in var.master_authorized_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "master_authorized_cidrs must be CIDR blocks and never 0.0.0.0/0."
  }
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "system_machine_type" {
  description = "Machine type of the system pool."
  type        = string
  default     = "e2-standard-2"
}

variable "worker_machine_type" {
  description = "Machine type of the worker pool."
  type        = string
  default     = "e2-standard-4"
}

variable "worker_min_nodes" {
  description = "Minimum worker nodes per zone."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_min_nodes >= 0
    error_message = "worker_min_nodes must be >= 0."
  }
}

variable "worker_max_nodes" {
  description = "Maximum worker nodes per zone."
  type        = number
  default     = 5

  validation {
    condition     = var.worker_max_nodes >= 1
    error_message = "worker_max_nodes must be >= 1."
  }
}

variable "websocket_machine_type" {
  description = "Machine type of the websocket pool."
  type        = string
  default     = "e2-standard-2"
}

variable "websocket_max_nodes" {
  description = "Maximum websocket nodes per zone."
  type        = number
  default     = 3

  validation {
    condition     = var.websocket_max_nodes >= 1
    error_message = "websocket_max_nodes must be >= 1."
  }
}

variable "use_spot" {
  description = "Run the workers and websocket pools on Spot VMs (not in prod)."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Refuse to delete the cluster from terraform."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Resource labels on the cluster."
  type        = map(string)
  default     = {}
}

variable "workload_identity_bindings" {
  description = "Map of 'namespace/ksa' => Google service account id (projects/…/serviceAccounts/…)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.workload_identity_bindings) : can(regex("^[a-z0-9-]+/[a-z0-9-]+$", k))])
    error_message = "Keys must be namespace/serviceaccount."
  }
}

variable "worker_hostname" {
  description = "DNS name of the worker Ingress (points at the worker global address)."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.worker_hostname))
    error_message = "worker_hostname must be a fully qualified DNS name."
  }
}
