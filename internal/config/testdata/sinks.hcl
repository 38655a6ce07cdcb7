sink "file" "alerts" {
  path   = "/var/log/encwatch/alerts.jsonl"
  format = "ecs"
  mode   = "0640"
  sync   = true
}

sink "syslog" "siem" {
  address        = "tls://127.0.0.1:6514"
  format         = "rfc5424"
  payload        = "cef"
  facility       = 13
  max_message    = 8192
  timeout        = "5s"
  min_importance = "high"
  tls {
    ca_file     = "/etc/encwatch/ca.pem"
    server_name = "siem.example"
  }
  spool {
    dir            = "/var/lib/encwatch/spool/siem"
    max_bytes      = 67108864
    when_full      = "drop_newest"
    fsync_interval = "1s"
  }
}

sink "http" "splunk" {
  url        = "https://splunk.example:8088/services/collector/event"
  kind       = "splunk_hec"
  token_file = "/run/credentials/encwatch.service/splunk-token"
  headers    = { "X-Env" = "prod" }
  splunk_ack = true
  index      = "security"
}
