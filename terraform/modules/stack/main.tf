# The whole codex-cloud deployment for one environment. Environment roots only choose sizes and
# names; everything else is decided here.
#
# Topic, subscription, bucket, queue and collection names come from shared/topology.yaml, the same
# file the local stack provisions, so local and production names cannot drift.
locals {
  topology = yamldecode(file("${path.module}/../../../shared/topology.yaml"))
  prefix   = var.name_prefix
  labels = merge(var.labels, {
    app         = "codex-cloud"
    environment = var.environment
  })

  services = [
    "apigateway.googleapis.com",
    "artifactregistry.googleapis.com",
    "binaryauthorization.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "cloudtrace.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicecontrol.googleapis.com",
    "servicemanagement.googleapis.com",
    "storage.googleapis.com",
    "workflowexecutions.googleapis.com",
    "workflows.googleapis.com",
  ]

  # One identity per function, service and worker, plus the identities that authenticate
  # platform-to-service calls (Pub/Sub push, Cloud Tasks, API Gateway).
  service_accounts = {
    api = {
      display_name  = "codex-cloud api (Cloud Run)"
      project_roles = ["roles/datastore.user", "roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/cloudtrace.agent"]
    }
    ingest = {
      display_name  = "codex-cloud ingest function"
      project_roles = ["roles/datastore.user", "roles/logging.logWriter"]
    }
    on-upload = {
      display_name  = "codex-cloud on_upload function"
      project_roles = ["roles/datastore.user", "roles/logging.logWriter", "roles/eventarc.eventReceiver"]
    }
    on-job-written = {
      display_name  = "codex-cloud on_job_written function"
      project_roles = ["roles/datastore.user", "roles/logging.logWriter", "roles/eventarc.eventReceiver", "roles/workflows.invoker"]
    }
    # workflows.invoker: the sweeper re-dispatches stale queued jobs through dispatch_job, which
    # starts a workflow execution for long jobs (shared/services/dispatch.py).
    sweeper = {
      display_name  = "codex-cloud sweeper function"
      project_roles = ["roles/datastore.user", "roles/logging.logWriter", "roles/workflows.invoker"]
    }
    worker = {
      display_name  = "codex-cloud worker (GKE Workload Identity)"
      project_roles = ["roles/datastore.user", "roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/cloudtrace.agent"]
    }
    workflows = {
      display_name  = "codex-cloud long-job workflow"
      project_roles = ["roles/logging.logWriter", "roles/datastore.user"]
    }
    scheduler = {
      display_name = "codex-cloud Cloud Scheduler caller (sweeper)"
    }
    pubsub-push = {
      display_name = "codex-cloud Pub/Sub push identity (ingest)"
    }
    dispatch = {
      display_name = "codex-cloud Cloud Tasks identity (OIDC to the worker)"
    }
    api-gateway = {
      display_name = "codex-cloud API Gateway backend identity"
    }
  }

  sa     = module.iam.emails
  member = module.iam.members

  # Only fields of shared/settings.py (CODEX_CLOUD_*); topic, bucket and queue names are derived
  # by the code from shared/topology.yaml plus CODEX_CLOUD_NAME_PREFIX, exactly as here.
  common_env = {
    CODEX_CLOUD_ENVIRONMENT = var.environment
    CODEX_CLOUD_PROJECT_ID  = var.project_id
    CODEX_CLOUD_REGION      = var.region
    CODEX_CLOUD_NAME_PREFIX = local.prefix
    CODEX_CLOUD_LOG_LEVEL   = "INFO"
  }

  functions_env = merge(local.common_env, {
    CODEX_CLOUD_API_BASE_URL = local.public_base_url
  })

  # Deterministic Cloud Run URLs (https://SERVICE-PROJECT_NUMBER.REGION.run.app) let services name
  # themselves in their own environment without a dependency cycle.
  api_run_url     = "https://api-${data.google_project.this.number}.${var.region}.run.app"
  public_base_url = var.api_gateway_hostname != null ? "https://${var.api_gateway_hostname}" : local.api_run_url

  # The sweeper function also serves the internal control routes (workflow callbacks, webhook
  # retries). Its deterministic Cloud Run URL avoids a dependency cycle on its own output.
  control_url = "https://sweeper-${data.google_project.this.number}.${var.region}.run.app"

  # The worker accepts only Google-signed OIDC ID tokens minted for its Ingress URL by these
  # identities (docs/decisions/0021; k8s/configmap.yaml sets the same audience and emails):
  # dispatch = Cloud Tasks' identity on job tasks, workflows = the long-job workflow's calls,
  # sweeper = its direct cancel of a timed-out job (the control routes run there too).
  worker_callers = [local.sa["dispatch"], local.sa["workflows"], local.sa["sweeper"]]

  dispatch_env = {
    CODEX_CLOUD_CONTROL_URL           = local.control_url
    CODEX_CLOUD_WORKFLOW_USE_OIDC     = "true"
    CODEX_CLOUD_WORKER_URL            = module.gke.worker_url
    CODEX_CLOUD_WORKER_OIDC_AUDIENCE  = module.gke.worker_url
    CODEX_CLOUD_TASKS_LOCATION        = var.region
    CODEX_CLOUD_TASKS_SERVICE_ACCOUNT = local.sa["dispatch"]
    CODEX_CLOUD_WORKFLOW_NAME         = module.workflows.workflow_name
  }
}

data "google_project" "this" {
  project_id = var.project_id
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [module.project_services]
}

module "project_services" {
  source     = "../project_services"
  project_id = var.project_id
  services   = local.services
}

module "iam" {
  source           = "../iam"
  project_id       = var.project_id
  service_accounts = local.service_accounts

  depends_on = [module.project_services]
}

# Dispatchers mint OIDC tokens for the dispatch identity on the tasks they enqueue.
resource "google_service_account_iam_member" "dispatch_users" {
  for_each = toset(["on-job-written", "sweeper"])

  service_account_id = module.iam.ids["dispatch"]
  role               = "roles/iam.serviceAccountUser"
  member             = local.member[each.value]
}

# The API signs download URLs for outputs with its own identity (IAM signBlob, no key files).
resource "google_service_account_iam_member" "api_self_signer" {
  service_account_id = module.iam.ids["api"]
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.member["api"]
}

# Pub/Sub mints the OIDC token on pushes to ingest.
resource "google_service_account_iam_member" "pubsub_push_token" {
  service_account_id = module.iam.ids["pubsub-push"]
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# Eventarc storage triggers need the Cloud Storage service agent to publish to Pub/Sub.
resource "google_project_iam_member" "gcs_pubsub_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption; see docs/decisions/0004-google-managed-encryption.md
  project       = var.project_id
  location      = var.region
  repository_id = "codex-cloud"
  description   = "codex-cloud container images (worker, api)."
  format        = "DOCKER"
  labels        = local.labels

  docker_config {
    immutable_tags = true
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "7776000s"
    }
  }

  depends_on = [module.project_services]
}

resource "google_artifact_registry_repository_iam_member" "readers" {
  for_each = {
    nodes = "serviceAccount:${module.gke.node_service_account}"
  }

  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}

module "network" {
  source     = "../network"
  project_id = var.project_id
  region     = var.region
  name       = "codex-${var.environment}"

  depends_on = [module.project_services]
}

module "storage" {
  source        = "../storage"
  project_id    = var.project_id
  location      = var.region
  topology      = local.topology
  name_prefix   = local.prefix
  labels        = local.labels
  force_destroy = var.environment != "prod"

  bucket_grants = [
    { bucket = "uploads", role = "roles/storage.objectUser", member = local.member["api"] },
    { bucket = "outputs", role = "roles/storage.objectViewer", member = local.member["api"] },
    { bucket = "results", role = "roles/storage.objectViewer", member = local.member["api"] },
    { bucket = "sessions", role = "roles/storage.objectViewer", member = local.member["api"] },
    { bucket = "uploads", role = "roles/storage.objectViewer", member = local.member["on-upload"] },
    # on-upload writes error reports as _errors/<name>.error.json in the uploads bucket and
    # overwrites them when the same name fails again (shared/services/uploads.py): create and
    # delete, limited to that prefix.
    { bucket = "uploads", role = "roles/storage.objectUser", member = local.member["on-upload"], object_prefix = "_errors/" },
    # on-job-written reads an existing result summary and replaces it when a newer upload's job
    # finishes (shared/services/completion.py): get, create and delete.
    { bucket = "results", role = "roles/storage.objectUser", member = local.member["on-job-written"] },
    { bucket = "uploads", role = "roles/storage.objectViewer", member = local.member["worker"] },
    { bucket = "outputs", role = "roles/storage.objectUser", member = local.member["worker"] },
    { bucket = "sessions", role = "roles/storage.objectUser", member = local.member["worker"] },
  ]

  depends_on = [module.project_services]
}

module "pubsub" {
  source            = "../pubsub"
  project_id        = var.project_id
  project_number    = data.google_project.this.number
  topology          = local.topology
  name_prefix       = local.prefix
  labels            = local.labels
  attach_job_schema = var.attach_job_schema

  # The ingest subscription pushes to the ingest function. The /projects/P/topics/T path makes
  # functions-framework present the push as a messagePublished CloudEvent, as Eventarc would.
  push_endpoints = {
    ingest = {
      endpoint              = "${module.functions.uris["ingest"]}/projects/${var.project_id}/topics/${local.prefix}${local.topology.topics.jobs.name}"
      service_account_email = local.sa["pubsub-push"]
      audience              = module.functions.uris["ingest"]
    }
  }

  topic_publishers = [
    { topic = "jobs", member = local.member["api"] },
    { topic = "jobs_dlq", member = local.member["ingest"] },
    { topic = "uploads_dlq", member = local.member["on-upload"] },
    { topic = "results", member = local.member["on-job-written"] },
    { topic = "events", member = local.member["on-job-written"] },
    { topic = "events", member = local.member["worker"] },
  ]

  depends_on = [module.project_services]
}

module "firestore" {
  source                 = "../firestore"
  project_id             = var.project_id
  location               = var.firestore_location
  collections            = local.topology.firestore
  point_in_time_recovery = var.environment == "prod"
  delete_protection      = var.environment == "prod"

  depends_on = [module.project_services]
}

module "tasks" {
  source      = "../tasks"
  project_id  = var.project_id
  region      = var.region
  topology    = local.topology
  name_prefix = local.prefix
  enqueuers   = [local.member["on-job-written"], local.member["sweeper"]]

  depends_on = [module.project_services]
}

module "redis" {
  source         = "../redis"
  project_id     = var.project_id
  region         = var.region
  name           = "codex-${var.environment}"
  tier           = var.redis_tier
  memory_size_gb = var.redis_memory_gb
  network_id     = module.network.network_id
  labels         = local.labels

  depends_on = [module.project_services]
}

module "secrets" {
  source      = "../secrets"
  project_id  = var.project_id
  region      = var.region
  name_prefix = local.prefix
  labels      = local.labels

  # Every function reads token-signing-key too: shared/settings.py refuses to start without it
  # outside local/test.
  secrets = {
    openai-api-key    = { accessors = [local.member["worker"]] }
    token-signing-key = { accessors = [local.member["api"], local.member["worker"], local.member["ingest"], local.member["on-upload"], local.member["on-job-written"], local.member["sweeper"]] }
    redis-url         = { accessors = [local.member["api"], local.member["worker"]] }
    redis-ca          = { accessors = [local.member["api"], local.member["worker"]] }
  }

  generated_values = {
    redis-url = module.redis.url
    redis-ca  = module.redis.server_ca_certs
  }

  depends_on = [module.project_services]
}

module "gke" {
  source                  = "../gke"
  project_id              = var.project_id
  name                    = "codex-${var.environment}"
  location                = var.gke_location
  network_id              = module.network.network_id
  subnet_id               = module.network.gke_subnet_id
  pods_range_name         = module.network.gke_pods_range_name
  services_range_name     = module.network.gke_services_range_name
  use_spot                = var.environment != "prod"
  worker_machine_type     = var.worker_machine_type
  worker_min_nodes        = var.worker_min_nodes
  worker_max_nodes        = var.worker_max_nodes
  deletion_protection     = var.environment == "prod"
  worker_hostname         = var.worker_hostname
  labels                  = local.labels
  master_authorized_cidrs = [module.network.gke_nodes_cidr]

  workload_identity_bindings = {
    "codex-cloud/codex-worker" = module.iam.ids["worker"]
  }

  depends_on = [module.project_services]
}

module "functions" {
  source                    = "../functions"
  project_id                = var.project_id
  region                    = var.region
  labels                    = local.labels
  source_bucket             = module.storage.sources_bucket
  source_object             = var.function_source_object
  push_service_account      = local.sa["pubsub-push"]
  scheduler_service_account = local.sa["scheduler"]
  # Workflow callbacks and webhook-retry tasks call the sweeper's control routes.
  sweeper_invokers         = [local.member["workflows"], local.member["dispatch"]]
  common_env               = local.functions_env
  dispatch_env             = local.dispatch_env
  uploads_bucket           = module.storage.names["uploads"]
  storage_trigger_region   = var.region
  firestore_trigger_region = module.firestore.location
  firestore_database       = module.firestore.database_name
  jobs_collection          = local.topology.firestore.jobs_collection
  max_instances            = var.function_max_instances

  service_accounts = {
    ingest         = local.sa["ingest"]
    on-upload      = local.sa["on-upload"]
    on-job-written = local.sa["on-job-written"]
    sweeper        = local.sa["sweeper"]
  }

  secret_env = {
    CODEX_CLOUD_TOKEN_SIGNING_KEY = module.secrets.secret_ids["token-signing-key"]
  }

  # module.secrets: a deploy fails unless the function's identity can already read the secret.
  depends_on = [google_project_iam_member.gcs_pubsub_publisher, module.secrets]
}

module "scheduler" {
  source                = "../scheduler"
  project_id            = var.project_id
  region                = var.region
  name_prefix           = local.prefix
  sweeper_uri           = module.functions.uris["sweeper"]
  service_account_email = local.sa["scheduler"]
}

module "workflows" {
  source                = "../workflows"
  project_id            = var.project_id
  region                = var.region
  name_prefix           = local.prefix
  service_account_email = local.sa["workflows"]
  source_contents       = var.workflow_source
  labels                = local.labels
  deletion_protection   = var.environment == "prod"
}

module "api" {
  source                = "../api_service"
  project_id            = var.project_id
  region                = var.region
  image                 = var.api_image
  metrics_sidecar_image = var.metrics_sidecar_image
  service_account_email = local.sa["api"]
  network_id            = module.network.network_id
  subnet_id             = module.network.run_subnet_id
  min_instances         = var.api_min_instances
  max_instances         = var.api_max_instances
  labels                = local.labels
  deletion_protection   = var.environment == "prod"
  invokers              = [local.member["api-gateway"]]

  env = merge(local.common_env, {
    CODEX_CLOUD_SERVICE_NAME       = "api"
    CODEX_CLOUD_WORKER_URL         = module.gke.worker_url
    CODEX_CLOUD_API_BASE_URL       = local.public_base_url
    CODEX_CLOUD_WEBSOCKET_BASE_URL = replace(local.api_run_url, "https://", "wss://")
    # The gateway proves its calls with an ID token for this audience (api-gateway.yaml's
    # jwt_audience, the api_audience output) minted for its backend identity.
    CODEX_CLOUD_TRUST_GATEWAY_USERINFO  = tostring(var.trust_gateway_userinfo)
    CODEX_CLOUD_GATEWAY_OIDC_AUDIENCE   = local.api_run_url
    CODEX_CLOUD_GATEWAY_ALLOWED_CALLERS = local.sa["api-gateway"]
  })

  secret_env = {
    CODEX_CLOUD_TOKEN_SIGNING_KEY = module.secrets.secret_ids["token-signing-key"]
    CODEX_CLOUD_REDIS_URL         = module.secrets.secret_ids["redis-url"]
  }

  # The Redis server CA, at the path the redis-url secret names (ssl_ca_certs).
  secret_files = {
    redis-ca = {
      secret     = module.secrets.secret_ids["redis-ca"]
      mount_path = "/etc/codex-cloud/redis"
      file_name  = "ca.pem"
    }
  }
}

module "monitoring" {
  source                    = "../monitoring"
  project_id                = var.project_id
  environment               = var.environment
  notification_channel_ids  = var.notification_channel_ids
  notification_emails       = var.notification_emails
  dashboard_json            = var.dashboard_json
  dead_letter_subscriptions = [module.pubsub.subscription_names["jobs_dlq_audit"]]

  depends_on = [module.project_services]
}
