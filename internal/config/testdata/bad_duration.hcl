audit {
  gather_window = "20 ms"
  event_timeout = "2h"
}
