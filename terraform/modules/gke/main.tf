# GKE cluster for the worker pool: private nodes, Workload Identity, shielded nodes, Dataplane V2
# (which enforces NetworkPolicy), Managed Service for Prometheus, and three node pools:
#   system    - cluster add-ons
#   workers   - codex-worker pods (tainted; spot VMs outside prod)
#   websocket - long-lived streaming workloads (tainted; spot VMs outside prod)
# The control plane has no public IP endpoint; operators and Cloud Build reach it through the
# IAM-authenticated DNS endpoint.
locals {
  node_tags = ["${var.name}-node"]
  pools = {
    system = {
      machine_type = var.system_machine_type
      min          = 1
      max          = 2
      spot         = false
      taint        = null
    }
    workers = {
      machine_type = var.worker_machine_type
      min          = var.worker_min_nodes
      max          = var.worker_max_nodes
      spot         = var.use_spot
      taint        = "codex-worker"
    }
    websocket = {
      machine_type = var.websocket_machine_type
      min          = 0
      max          = var.websocket_max_nodes
      spot         = var.use_spot
      taint        = "websocket"
    }
  }
}

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name}-nodes"
  display_name = "GKE nodes (${var.name})"
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ])

  project = var.project_id
  role    = each.value
  member  = google_service_account.nodes.member
}

resource "google_container_cluster" "this" {
  #checkov:skip=CKV_GCP_65:RBAC via Google Groups needs a Workspace domain; access is granted to IAM principals instead
  #checkov:skip=CKV_GCP_12:Dataplane V2 (ADVANCED_DATAPATH) enforces NetworkPolicy natively; the Calico network_policy addon must stay off with it
  project             = var.project_id
  name                = var.name
  location            = var.location
  network             = var.network_id
  subnetwork          = var.subnet_id
  deletion_protection = var.deletion_protection
  resource_labels     = var.labels

  remove_default_node_pool = true
  initial_node_count       = 1

  datapath_provider           = "ADVANCED_DATAPATH"
  enable_shielded_nodes       = true
  enable_intranode_visibility = true

  release_channel {
    channel = var.release_channel
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  ip_allocation_policy {
    cluster_secondary_range_name  = var.pods_range_name
    services_secondary_range_name = var.services_range_name
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = true
    master_ipv4_cidr_block  = var.master_cidr

    master_global_access_config {
      enabled = false
    }
  }

  control_plane_endpoints_config {
    dns_endpoint_config {
      allow_external_traffic = true
    }
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_cidrs
      content {
        cidr_block   = cidr_blocks.value
        display_name = "authorized-${replace(cidr_blocks.value, "/[./]/", "-")}"
      }
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]
    managed_prometheus {
      enabled = true
    }
  }

  security_posture_config {
    mode = "BASIC"
  }

  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    image_type      = "COS_CONTAINERD"
    metadata = {
      disable-legacy-endpoints = "true"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  maintenance_policy {
    recurring_window {
      start_time = "2025-01-04T02:00:00Z"
      end_time   = "2025-01-04T08:00:00Z"
      recurrence = "FREQ=WEEKLY;BYDAY=SA,SU"
    }
  }

  lifecycle {
    ignore_changes = [node_config]
  }
}

resource "google_container_node_pool" "this" {
  for_each = local.pools

  project  = var.project_id
  name     = each.key
  cluster  = google_container_cluster.this.id
  location = var.location

  initial_node_count = each.value.min

  autoscaling {
    min_node_count = each.value.min
    max_node_count = each.value.max
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = each.value.machine_type
    spot            = each.value.spot
    disk_size_gb    = 50
    disk_type       = "pd-balanced"
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    tags            = local.node_tags
    labels = {
      "codex-cloud/pool" = each.key
    }
    metadata = {
      disable-legacy-endpoints = "true"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    dynamic "taint" {
      for_each = each.value.taint != null ? [each.value.taint] : []
      content {
        key    = "codex-cloud/dedicated"
        value  = taint.value
        effect = "NO_SCHEDULE"
      }
    }
  }
}

# The worker's Kubernetes service account acts as the worker Google service account.
resource "google_service_account_iam_member" "workload_identity" {
  for_each = var.workload_identity_bindings

  service_account_id = each.value
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${each.key}]"

  # The workload identity pool exists once the cluster does.
  depends_on = [google_container_cluster.this]
}

# Static address and Google-managed certificate for the worker Ingress (k8s/ingress.yaml refers
# to both by name). Cloud Tasks and Workflows reach the worker through it with OIDC tokens.
resource "google_compute_global_address" "worker" {
  project = var.project_id
  name    = "${var.name}-worker-ingress"
}

resource "google_compute_managed_ssl_certificate" "worker" {
  project = var.project_id
  name    = "${var.name}-worker-cert"

  managed {
    domains = [var.worker_hostname]
  }
}

resource "google_compute_ssl_policy" "worker" {
  project         = var.project_id
  name            = "${var.name}-worker-tls"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}
