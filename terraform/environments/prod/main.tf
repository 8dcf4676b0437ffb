# prod: regional GKE on standard VMs, STANDARD_HA 5 GB Redis, warm api instances, deletion
# protection on stateful resources.
module "codex_cloud" {
  source = "../../modules/stack"

  project_id         = var.project_id
  environment        = "prod"
  region             = var.region
  name_prefix        = coalesce(var.name_prefix, "${var.project_id}-")
  firestore_location = var.firestore_location
  gke_location       = var.region
  worker_hostname    = var.worker_hostname

  worker_machine_type = "e2-standard-8"
  worker_min_nodes    = 1
  worker_max_nodes    = 10

  redis_tier      = "STANDARD_HA"
  redis_memory_gb = 5

  api_image         = var.api_image
  api_min_instances = 2
  api_max_instances = 50

  function_max_instances = 50

  workflow_source = file("${path.root}/../../../workflows/long_job.yaml")
  dashboard_json  = file("${path.root}/../../../monitoring/dashboards/codex-cloud.json")

  notification_emails      = var.notification_emails
  notification_channel_ids = var.notification_channel_ids
  api_gateway_hostname     = var.api_gateway_hostname
  trust_gateway_userinfo   = var.trust_gateway_userinfo
}
