# encwatch policy. Installed as /etc/encwatch/config.hcl; files in
# /etc/encwatch/conf.d/*.hcl are read after it, in lexical order, as part of
# the same policy. The daemon refuses any of them that is not owned by root
# or is writable by group or others. Check a change with `encwatch validate`.

settings {
  # Every alert carries it: ci, staging, production or a word of your own.
  environment = "production"
  # Names this machine in alerts; empty means the system hostname.
  hostname = ""
}

audit {
  # encwatch is the audit daemon: it holds the kernel's audit pid and reads
  # records over netlink. Do not run auditd beside it.
  mode    = "owner"
  enabled = true

  # Records the kernel queues while encwatch is busy.
  backlog_limit = 8192
  # When the backlog is full, how long (in kernel ticks, jiffies: the kernel's
  # default is 60 s, 60*HZ) an audited process waits for room. 0 drops
  # records instead, counted as lost, and never stalls a process; a positive
  # value loses nothing until it runs out but can stall every exec on the
  # machine while encwatch is slow. Left out, the kernel's value is kept.
  # backlog_wait_time = 0
  # Records per second, 0 for no limit.
  rate_limit = 0
  # What the kernel does when it loses a record: silent, printk or panic.
  # Leave it out to keep the kernel's value.
  failure = "printk"

  # Key of encwatch's audit rules; it removes only rules with this key.
  rule_key = "encwatch"
  # After the first record arrives, let more gather this long before reading
  # them in one go: fewer wake-ups for a little alert latency.
  gather_window = "20ms"
  # Complete an event whose closing record never came after this long.
  event_timeout = "2s"
  # Events assembled at once, at most.
  max_in_flight = 4096
}

signature "data_encoder_exec" {
  description = "Data encoder execution"
  category    = "Execution"
  method      = "Command and Scripting Interpreter"
  importance  = "high"
  mitre       = ["T1059", "T1027", "T1132"]
  # Matched against the basename of the executed file and of argv[0], so a
  # busybox applet or a renamed copy is caught too.
  executables = [
    "base16", "base32", "base32hex", "base32plain", "base58", "base64",
    "base64mime", "base64pem", "base64plain", "base64url", "basez", "ascii85",
    "urlencode", "uuencode", "uudecode", "basenc",
  ]
}

sink "stdout" "console" {
  format = "json"
}

# sink "file" "alerts" {
#   path = "/var/log/encwatch/alerts.jsonl"
#   mode = "0600"
# }
