# dev: zonal GKE on Spot VMs, BASIC 1 GB Redis, scale-to-zero friendly sizes.
module "codex_cloud" {
  source = "../../modules/stack"

  project_id         = var.project_id
  environment        = "dev"
  region             = var.region
  name_prefix        = coalesce(var.name_prefix, "${var.project_id}-")
  firestore_location = var.firestore_location
  gke_location       = "${var.region}-${var.zone_suffix}"
  worker_hostname    = var.worker_hostname

  worker_machine_type = "e2-standard-4"
  worker_min_nodes    = 0
  worker_max_nodes    = 3

  redis_tier      = "BASIC"
  redis_memory_gb = 1

  api_image         = var.api_image
  api_min_instances = 0
  api_max_instances = 5

  function_max_instances = 10

  workflow_source = file("${path.root}/../../../workflows/long_job.yaml")
  dashboard_json  = file("${path.root}/../../../monitoring/dashboards/codex-cloud.json")

  notification_emails      = var.notification_emails
  notification_channel_ids = var.notification_channel_ids
  api_gateway_hostname     = var.api_gateway_hostname
  trust_gateway_userinfo   = var.trust_gateway_userinfo
}
