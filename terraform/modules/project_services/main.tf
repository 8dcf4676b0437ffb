# Every API the deployment uses, enabled once per project. Services stay enabled on destroy:
# disabling an API in a shared project can break resources that terraform does not own.
resource "google_project_service" "this" {
  for_each = toset(var.services)

  project                    = var.project_id
  service                    = each.value
  disable_on_destroy         = false
  disable_dependent_services = false
}
