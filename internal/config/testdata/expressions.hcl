settings {
  environment = var.env
  hostname    = upper("x")
}
