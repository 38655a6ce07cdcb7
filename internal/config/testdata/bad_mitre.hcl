signature "enc" {
  importance  = "low"
  mitre       = ["T1027", "1132", "T1027.1"]
  executables = []
}
