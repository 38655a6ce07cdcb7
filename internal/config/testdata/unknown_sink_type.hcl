sink "stdot" "console" {
  format = "json"
}
