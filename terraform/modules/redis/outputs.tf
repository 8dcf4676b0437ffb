output "host" {
  description = "Private IP of the instance."
  value       = google_redis_instance.this.host
}

output "port" {
  description = "Port of the instance."
  value       = google_redis_instance.this.port
}

# ssl_check_hostname=false: clients connect to the instance's private IP, and Memorystore's server
# certificate does not name that IP as a subject alternative name, so redis-py (which checks the
# hostname by default since 6.0) would refuse every TLS handshake and the API's /ready probe would
# never pass. The certificate chain is still verified against the pinned server CA (ssl_ca_certs,
# cert_reqs stays "required"); only the name match is skipped. redis-py parses the value with
# to_bool ("false" -> False), for both redis.Redis and redis.asyncio.Redis.from_url.
output "url" {
  description = "rediss:// URL including the AUTH string, the CA file to verify the server with, and hostname checking off (the certificate does not name the IP)."
  value       = "rediss://:${google_redis_instance.this.auth_string}@${google_redis_instance.this.host}:${google_redis_instance.this.port}/0?ssl_ca_certs=${urlencode(var.ca_cert_path)}&ssl_check_hostname=false"
  sensitive   = true
}

output "server_ca_certs" {
  description = "PEM certificates clients must trust for TLS."
  value       = join("\n", [for c in google_redis_instance.this.server_ca_certs : c.cert])
}
