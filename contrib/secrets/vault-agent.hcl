# Vault Agent on an appliance: logs in with AppRole and renders each secret qsysd needs into a
# file named as qsysd's credential. qsysd reads nothing from Vault itself: systemd loads the
# rendered files as credentials (qsysd-vault.conf), so no Vault code runs in qsysd.
#
#   vault agent -config=/etc/vault-agent.d/qsysd.hcl
#
# KV v2 layout assumed: secret/qsysd/cores {main = "<PIN>", lobby = "<PIN>"} and
# secret/qsysd/redis {url = "redis://...", limits = "redis://..."}.

vault {
  address = "https://vault.example.com:8200"
}

auto_auth {
  method "approle" {
    config = {
      role_id_file_path                   = "/etc/vault-agent.d/qsysd-role-id"
      secret_id_file_path                 = "/etc/vault-agent.d/qsysd-secret-id"
      remove_secret_id_file_after_reading = false
    }
  }
}

# Re-render when a secret changes; qsysd reads the PIN at (re)connect and the Redis URLs at
# start, so restart qsysd after a rotation (exec below).
template_config {
  static_secret_render_interval = "5m"
  exit_on_retry_failure         = true
}

template {
  destination = "/run/qsysd-vault/core-main-password"
  perms       = "0400"
  contents    = "{{ with secret \"secret/data/qsysd/cores\" }}{{ .Data.data.main }}{{ end }}"
}

template {
  destination = "/run/qsysd-vault/core-lobby-password"
  perms       = "0400"
  contents    = "{{ with secret \"secret/data/qsysd/cores\" }}{{ .Data.data.lobby }}{{ end }}"
}

template {
  destination = "/run/qsysd-vault/redis-url"
  perms       = "0400"
  contents    = "{{ with secret \"secret/data/qsysd/redis\" }}{{ .Data.data.url }}{{ end }}"
}

template {
  destination = "/run/qsysd-vault/rate-limit-storage"
  perms       = "0400"
  contents    = "{{ with secret \"secret/data/qsysd/redis\" }}{{ .Data.data.limits }}{{ end }}"
  exec {
    command = ["systemctl", "try-restart", "qsysd.service"]
  }
}
