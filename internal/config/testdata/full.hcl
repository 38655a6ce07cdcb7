settings {
  environment = "ci"
  hostname    = "build-7"
}

audit {
  backlog_limit = 16384
  rate_limit    = 1000
  gather_window = "0s"
  event_timeout = "500ms"
  max_in_flight = 100
  enabled       = false
  failure       = "silent"
  rule_key      = "encwatch-test"
}

signature "enc" {
  importance  = "critical"
  executables = ["xxd"]
}

sink "file" "alerts" {
  path = "/var/log/encwatch/alerts.jsonl"
}
