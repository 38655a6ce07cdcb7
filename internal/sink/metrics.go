package sink

import "github.com/prometheus/client_golang/prometheus"

var descSpoolCorrupt = prometheus.NewDesc("encwatch_spool_corrupt_records_total",
	"Alerts lost to damaged spool records (found when a spool is opened or read), by sink; each damaged region is logged and quarantined.",
	[]string{"sink"}, nil)

// spoolCollector exports the spools' corruption counters at scrape time.
type spoolCollector struct{ router func() *Router }

// NewSpoolCollector returns the Prometheus collector of the sink metrics
// the spool keeps (encwatch_spool_corrupt_records_total), read at scrape
// time from the router that router returns (nil: none yet). The counters
// run since the router was made, like the other sink counters.
func NewSpoolCollector(router func() *Router) prometheus.Collector {
	return &spoolCollector{router: router}
}

// Describe sends the metric's description.
func (c *spoolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descSpoolCorrupt }

// Collect sends one counter per spooled sink.
func (c *spoolCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.router()
	if r == nil {
		return
	}
	for _, q := range r.queues {
		if q.spool != nil {
			ch <- prometheus.MustNewConstMetric(descSpoolCorrupt, prometheus.CounterValue, float64(q.spool.Corrupt()), q.sink.Name())
		}
	}
}
