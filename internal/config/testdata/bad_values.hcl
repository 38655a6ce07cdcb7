settings {
  environment = "Prod env"
}

audit {
  mode          = "multicst"
  enabled       = "yes"
  backlog_limit = -1
  failure       = "printf"
  rule_key      = "has space"
  max_in_flight = 1.5
}

signature "enc" {
  importance  = "hgih"
  mitre       = ["T1027", "1132", 7]
  executables = ["/usr/bin/base64"]
}
