# Topics and subscriptions come from shared/topology.yaml (decoded by the caller and passed in as
# var.topology), so the local stack and production use the same logical names.
#
# The jobs topic carries an AVRO schema with JSON encoding. The JSON Schema in shared/schemas is the
# contract the services validate against; the AVRO record (job-message.avsc) is only a broker-side
# guard that stops obviously malformed publishes before they reach the ingest function.
locals {
  # "7d" / "12h" / "30m" -> seconds, as the Pub/Sub API expects ("604800s").
  unit_seconds = { d = 86400, h = 3600, m = 60, s = 1 }

  topics = {
    for key, t in var.topology.topics : key => {
      name      = "${var.name_prefix}${t.name}"
      retention = "${tonumber(substr(t.retention, 0, length(t.retention) - 1)) * local.unit_seconds[substr(t.retention, length(t.retention) - 1, 1)]}s"
      schema    = try(t.schema, null)
    }
  }

  subscriptions = {
    for key, s in var.topology.subscriptions : key => {
      name              = "${var.name_prefix}${s.name}"
      topic             = s.topic
      ack_deadline      = s.ack_deadline
      retention         = "${tonumber(substr(s.retention, 0, length(s.retention) - 1)) * local.unit_seconds[substr(s.retention, length(s.retention) - 1, 1)]}s"
      dead_letter_topic = try(s.dead_letter_topic, null)
      max_attempts      = try(s.max_delivery_attempts, 5)
    }
  }

  dead_letter_topics = toset(compact([for s in local.subscriptions : s.dead_letter_topic]))
  pubsub_agent       = "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_schema" "job_message" {
  project    = var.project_id
  name       = "${var.name_prefix}codex-job-message"
  type       = "AVRO"
  definition = file("${path.module}/job-message.avsc")
}

resource "google_pubsub_topic" "this" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption keys are used; see docs/decisions/0004-google-managed-encryption.md
  for_each = local.topics

  project                    = var.project_id
  name                       = each.value.name
  message_retention_duration = each.value.retention
  labels                     = var.labels

  dynamic "schema_settings" {
    for_each = each.value.schema != null && var.attach_job_schema ? [1] : []
    content {
      schema   = google_pubsub_schema.job_message.id
      encoding = "JSON"
    }
  }
}

resource "google_pubsub_subscription" "this" {
  for_each = local.subscriptions

  project                    = var.project_id
  name                       = each.value.name
  topic                      = google_pubsub_topic.this[each.value.topic].id
  ack_deadline_seconds       = each.value.ack_deadline
  message_retention_duration = each.value.retention
  labels                     = var.labels

  # Never expire an idle subscription: a quiet week must not delete the DLQ audit trail.
  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dynamic "dead_letter_policy" {
    for_each = each.value.dead_letter_topic != null ? [1] : []
    content {
      dead_letter_topic     = google_pubsub_topic.this[each.value.dead_letter_topic].id
      max_delivery_attempts = each.value.max_attempts
    }
  }

  dynamic "push_config" {
    for_each = contains(keys(var.push_endpoints), each.key) ? [var.push_endpoints[each.key]] : []
    content {
      push_endpoint = push_config.value.endpoint
      oidc_token {
        service_account_email = push_config.value.service_account_email
        audience              = push_config.value.audience
      }
    }
  }
}

# Dead-lettering is done by the Pub/Sub service agent: it must publish to each DLQ topic and
# acknowledge on each subscription that forwards to one.
resource "google_pubsub_topic_iam_member" "dlq_publisher" {
  for_each = local.dead_letter_topics

  project = var.project_id
  topic   = google_pubsub_topic.this[each.value].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dlq_subscriber" {
  for_each = { for k, s in local.subscriptions : k => s if s.dead_letter_topic != null }

  project      = var.project_id
  subscription = google_pubsub_subscription.this[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

resource "google_pubsub_topic_iam_member" "publishers" {
  for_each = { for g in var.topic_publishers : "${g.topic}|${g.member}" => g }

  project = var.project_id
  topic   = google_pubsub_topic.this[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = each.value.member
}

resource "google_pubsub_subscription_iam_member" "subscribers" {
  for_each = { for g in var.subscription_subscribers : "${g.subscription}|${g.member}" => g }

  project      = var.project_id
  subscription = google_pubsub_subscription.this[each.value.subscription].name
  role         = "roles/pubsub.subscriber"
  member       = each.value.member
}
