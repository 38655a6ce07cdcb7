signature "a" {
  importance = "critical"
  sequence {
    pipe               = "encoder | curl"
    unpiped_importance = "medium"
    step "encoder" {
      executables = ["base64"]
    }
    step "network" {
      executables = ["curl"]
    }
  }
}
signature "b" {
  importance = "critical"
  sequence {
    pipe               = "encoder | network"
    unpiped_importance = "meduim"
    step "encoder" {
      executables = ["base64"]
    }
    step "network" {
      executables = ["curl"]
    }
  }
}
signature "c" {
  importance = "critical"
  sequence {
    pipe = "encoder | network"
    step "encoder" {
      executables = ["base64"]
    }
    step "network" {
      executables = ["curl"]
    }
  }
}
