variable "project_id" {
  description = "Project that owns the database."
  type        = string
}

variable "location" {
  description = "Firestore location (a region such as europe-west1 or a multi-region such as nam5)."
  type        = string
}

variable "collections" {
  description = "The firestore section of shared/topology.yaml."
  type = object({
    jobs_collection       = string
    events_subcollection  = string
    stream_subcollection  = string
    keys_collection       = string
    dedup_collection      = string
    cancels_subcollection = string
    leases_collection     = string
  })
}

variable "point_in_time_recovery" {
  description = "Enable 7-day point-in-time recovery."
  type        = bool
  default     = true
}

variable "delete_protection" {
  description = "Protect the database from deletion (and abandon it on terraform destroy)."
  type        = bool
  default     = true
}
