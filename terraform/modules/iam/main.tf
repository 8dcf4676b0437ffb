# One service account per function, service and worker. Project-level grants are limited to roles
# that have no narrower resource scope (Firestore, logging, metrics, Workflows invocation);
# everything that can be granted on a single topic, bucket, queue or secret is granted there by
# the module that owns that resource.
locals {
  grants = merge([
    for key, sa in var.service_accounts : {
      for role in sa.project_roles : "${key}|${role}" => { key = key, role = role }
    }
  ]...)
}

resource "google_service_account" "this" {
  for_each = var.service_accounts

  project      = var.project_id
  account_id   = "${var.account_prefix}${each.key}"
  display_name = each.value.display_name
  description  = each.value.description
}

resource "google_project_iam_member" "this" {
  for_each = local.grants

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.this[each.value.key].member
}
