signature "x" {
  importance = "high
}
