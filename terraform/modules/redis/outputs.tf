output "host" {
  description = "Private IP of the instance."
  value       = google_redis_instance.this.host
}

output "port" {
  description = "Port of the instance."
  value       = google_redis_instance.this.port
}

output "url" {
  description = "rediss:// URL including the AUTH string and the CA file to verify the server with."
  value       = "rediss://:${google_redis_instance.this.auth_string}@${google_redis_instance.this.host}:${google_redis_instance.this.port}/0?ssl_ca_certs=${urlencode(var.ca_cert_path)}"
  sensitive   = true
}

output "server_ca_certs" {
  description = "PEM certificates clients must trust for TLS."
  value       = join("\n", [for c in google_redis_instance.this.server_ca_certs : c.cert])
}
