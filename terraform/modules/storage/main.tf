# Buckets from shared/topology.yaml: uniform bucket-level access, public access prevention
# enforced, lifecycle deletion after the topology's delete_after_days, versioning where the
# topology asks for it. Access logs of every bucket go to one log bucket.
locals {
  buckets = {
    for key, b in var.topology.buckets : key => {
      name       = "${var.name_prefix}${b.name}"
      delete_age = b.delete_after_days
      versioned  = b.versioned
    }
  }
}

resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:This is the access-log sink; a log bucket cannot log into itself
  #checkov:skip=CKV_GCP_78:Access logs are append-only and expire; versioning adds cost without value
  project                     = var.project_id
  name                        = "${var.name_prefix}codex-access-logs"
  location                    = var.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = var.labels

  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      age = var.access_log_days
    }
  }
}

resource "google_storage_bucket" "this" {
  #checkov:skip=CKV_GCP_78:Versioning follows topology.yaml: only the outputs bucket keeps versions; the others hold write-once objects that expire
  for_each = local.buckets

  project                     = var.project_id
  name                        = each.value.name
  location                    = var.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = var.labels

  versioning {
    enabled = each.value.versioned
  }

  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = each.key
  }

  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      age = each.value.delete_age
    }
  }

  # Versioned buckets: noncurrent versions go after 7 days so versioning cannot grow unbounded.
  dynamic "lifecycle_rule" {
    for_each = each.value.versioned ? [1] : []
    content {
      action {
        type = "Delete"
      }
      condition {
        days_since_noncurrent_time = 7
        with_state                 = "ARCHIVED"
      }
    }
  }
}

# A grant with object_prefix applies only to objects under that prefix (IAM condition on the
# object name; buckets use uniform bucket-level access, which IAM conditions require). Bucket-level
# permissions such as storage.objects.list do not match such a condition.
resource "google_storage_bucket_iam_member" "this" {
  # Unconditioned grants keep their original key so existing bindings are not recreated.
  for_each = {
    for g in var.bucket_grants :
    g.object_prefix == null ? "${g.bucket}|${g.role}|${g.member}" : "${g.bucket}|${g.role}|${g.member}|${g.object_prefix}" => g
  }

  bucket = google_storage_bucket.this[each.value.bucket].name
  role   = each.value.role
  member = each.value.member

  dynamic "condition" {
    for_each = each.value.object_prefix == null ? [] : [each.value.object_prefix]
    content {
      title       = "objects under ${condition.value}"
      description = "Only objects whose name starts with ${condition.value}."
      expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.this[each.value.bucket].name}/objects/${condition.value}\")"
    }
  }
}

# Source archives for the first function deployment (Cloud Build redeploys from the repository).
resource "google_storage_bucket" "sources" {
  project                     = var.project_id
  name                        = "${var.name_prefix}codex-sources"
  location                    = var.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = var.labels

  versioning {
    enabled = true
  }

  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = "sources"
  }

  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
  }
}
