signature "data_encoder_exec" {
  importance  = "high"
  executables = ["base64"]
}

signature "data_encoder_exec" {
  importance  = "low"
  executables = ["base32"]
}
