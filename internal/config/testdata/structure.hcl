environment = "ci"

settings "extra" {
}

signatur "x" {
}

signature {
  importance = "high"
}

signature "no_exes" {
  method = "x"
  sink "stdout" "inner" {}
}

sink "file" "alerts" {
  format = "jsn"
  mode   = "0666"
}

sink "stdout" {
}
