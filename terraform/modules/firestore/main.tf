# Firestore (native mode) with the composite indexes the code's queries need and a TTL policy on
# the events collection group. The emulator does not enforce composite indexes, so every query the
# services make with an equality filter plus an order/range on another field is listed here.
locals {
  jobs   = var.collections.jobs_collection
  events = var.collections.events_subcollection
  keys   = var.collections.keys_collection

  indexes = {
    # GET /v1/jobs?tenant=… newest first, paginated by cursor (__name__ breaks ties).
    jobs_by_tenant = {
      collection = local.jobs
      fields = [
        { path = "tenant", order = "ASCENDING" },
        { path = "created_at", order = "DESCENDING" },
        { path = "__name__", order = "DESCENDING" },
      ]
    }
    jobs_by_tenant_status = {
      collection = local.jobs
      fields = [
        { path = "tenant", order = "ASCENDING" },
        { path = "status", order = "ASCENDING" },
        { path = "created_at", order = "DESCENDING" },
      ]
    }
    jobs_by_tenant_channel = {
      collection = local.jobs
      fields = [
        { path = "tenant", order = "ASCENDING" },
        { path = "channel", order = "ASCENDING" },
        { path = "created_at", order = "DESCENDING" },
      ]
    }
    jobs_by_tenant_status_channel = {
      collection = local.jobs
      fields = [
        { path = "tenant", order = "ASCENDING" },
        { path = "status", order = "ASCENDING" },
        { path = "channel", order = "ASCENDING" },
        { path = "created_at", order = "DESCENDING" },
      ]
    }
    # Sweeper (shared/services/sweeper.py, JobStore.query_by_status): status == S and
    # <timestamp> < now, for deadline_at, dispatched_at and updated_at. Expired leases are a
    # single-field query on leases.expires_at (automatic index).
    # Non-terminal jobs past their deadline.
    jobs_by_status_deadline = {
      collection = local.jobs
      fields = [
        { path = "status", order = "ASCENDING" },
        { path = "deadline_at", order = "ASCENDING" },
      ]
    }
    # Dispatched jobs no worker picked up.
    jobs_by_status_dispatched = {
      collection = local.jobs
      fields = [
        { path = "status", order = "ASCENDING" },
        { path = "dispatched_at", order = "ASCENDING" },
      ]
    }
    # Jobs that have not changed for too long: queued jobs nobody dispatched (sweeper) and
    # operational queries.
    jobs_by_status_updated = {
      collection = local.jobs
      fields = [
        { path = "status", order = "ASCENDING" },
        { path = "updated_at", order = "ASCENDING" },
      ]
    }
    # api_keys listed per tenant, oldest first.
    keys_by_tenant = {
      collection = local.keys
      fields = [
        { path = "tenant", order = "ASCENDING" },
        { path = "created_at", order = "ASCENDING" },
      ]
    }
  }
}

resource "google_firestore_database" "this" {
  project                           = var.project_id
  name                              = "(default)"
  location_id                       = var.location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = var.point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = var.delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.delete_protection ? "ABANDON" : "DELETE"
}

resource "google_firestore_index" "this" {
  for_each = local.indexes

  project     = var.project_id
  database    = google_firestore_database.this.name
  collection  = each.value.collection
  query_scope = "COLLECTION"

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value.path
      order      = fields.value.order
    }
  }
}

# Documents that carry expire_at; Firestore deletes each after it.
locals {
  ttl_collections = {
    # Job events (jobs/{id}/events/{seq}), kept for event_ttl_days.
    events = local.events
    # Cancel signals (workers/{worker}/cancels/{job}) a worker never took (it died).
    cancel_signals = var.collections.cancels_subcollection
    # Leases (leases/{job}) are deleted with every way out of `running`; one left behind
    # (written by hand, or by a release that never ran) expires a day after the lease.
    leases = var.collections.leases_collection
  }
}

resource "google_firestore_field" "ttl" {
  for_each = local.ttl_collections

  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = each.value
  field      = "expire_at"

  ttl_config {}

  # A TTL field needs no single-field index of its own; skipping it saves write cost.
  index_config {}
}

moved {
  from = google_firestore_field.events_ttl
  to   = google_firestore_field.ttl["events"]
}

moved {
  from = google_firestore_field.cancel_signals_ttl
  to   = google_firestore_field.ttl["cancel_signals"]
}

# Caller-shaped values nobody queries get no single-field indexes: a nested output schema,
# metadata or structured output can hold thousands of leaves, each an index entry on every
# write (cost and latency), and past Firestore's 40,000 entries per document the job's final
# write would be refused. Queries filter and sort on top-level scalars only (jobstore.py).
locals {
  unindexed_fields = {
    job_request = { collection = local.jobs, field = "request" }
    job_result  = { collection = local.jobs, field = "result" }
    event_data  = { collection = local.events, field = "data" }
  }
}

resource "google_firestore_field" "unindexed" {
  for_each = local.unindexed_fields

  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = each.value.collection
  field      = each.value.field

  index_config {}
}
