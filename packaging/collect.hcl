# encwatch collector policy: /etc/encwatch/collect/collect.hcl, read by
# `encwatch collect` (encwatch-collect.service). See
# /usr/share/doc/encwatch/fleet.md. The agents publish with a
# sink "nats" block and a heartbeat block in their own config.hcl.

# The collector's default, 9465: an agent on the same host has 9464.
metrics {
  address = "127.0.0.1:9465"
}

collect {
  urls     = ["nats://127.0.0.1:4222"]
  stream   = "ENCWATCH"
  consumer = "encwatch-collect"
  # A host is silent after three of its heartbeat intervals without one.
  # silent_after = "3m"
  # The collector's own nkey seed (root-owned, mode 0600) for the user of
  # fleet.md's server configuration; a server off loopback needs tls://.
  nkey_file = "/etc/encwatch/collect/nats.nk"
  # tls {
  #   ca_file = "/etc/encwatch/collect/ca.pem"
  # }
}

# Where the fleet's alerts go: replace with the SIEM's sink, with a spool.
sink "file" "fleet" {
  path = "/var/log/encwatch-collect/alerts.jsonl"
  spool {
    dir = "/var/lib/encwatch-collect/spool"
  }
}
