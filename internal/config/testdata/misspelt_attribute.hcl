signature "data_encoder_exec" {
  description = "Data encoder execution"
  improtance  = "high"
  executables = ["base64"]
}
