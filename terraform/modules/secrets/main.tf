# Secret containers only: values are added out of band (gcloud secrets versions add), except
# those passed in var.generated_values (computed by terraform, e.g. the Redis URL with its AUTH
# string). Accessor grants are per secret; nothing gets project-wide secret access.
resource "google_secret_manager_secret" "this" {
  for_each = var.secrets

  project   = var.project_id
  secret_id = "${var.name_prefix}${each.key}"
  labels    = var.labels

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "generated" {
  for_each = nonsensitive(toset(keys(var.generated_values)))

  secret      = google_secret_manager_secret.this[each.value].id
  secret_data = var.generated_values[each.value]
}

resource "google_secret_manager_secret_iam_member" "accessors" {
  for_each = merge([
    for key, s in var.secrets : {
      for m in s.accessors : "${key}|${m}" => { secret = key, member = m }
    }
  ]...)

  project   = var.project_id
  secret_id = google_secret_manager_secret.this[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value.member
}
