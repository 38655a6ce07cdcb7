settings {
  environment = "ci"
}

settings {
  environment = "staging"
}

sink "stdout" "out" {}
sink "file" "out" {
  path = "/var/log/encwatch/alerts.jsonl"
}
