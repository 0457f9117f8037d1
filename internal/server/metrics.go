package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the service's Prometheus metrics. Labels never carry
// contact addresses, ids or message content.
type metrics struct {
	reg      *prometheus.Registry
	inbound  *prometheus.CounterVec
	outbound *prometheus.CounterVec
	handle   prometheus.Histogram
	depth    prometheus.Gauge
	dead     prometheus.Gauge
	reloads  *prometheus.CounterVec
	limited  prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "safeflow_inbound_messages_total",
			Help: "Inbound messages by channel and outcome (handled, duplicate, rejected, rate_limited, error)."}, []string{"channel", "status"}),
		outbound: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "safeflow_outbound_messages_total",
			Help: "Outbound delivery attempts by channel and outcome (sent, retry, dead)."}, []string{"channel", "status"}),
		handle: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "safeflow_handle_seconds",
			Help: "Time to handle one inbound message, store transaction included.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "safeflow_outbox_depth", Help: "Messages waiting for delivery."}),
		dead:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "safeflow_outbox_dead_letters", Help: "Messages that could not be delivered."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "safeflow_flow_reloads_total",
			Help: "Flow reloads by result (applied, rejected)."}, []string{"result"}),
		limited: prometheus.NewCounter(prometheus.CounterOpts{Name: "safeflow_rate_limited_total",
			Help: "Inbound messages dropped by the per-contact rate limit."}),
	}
	// Both results exist from the start, so rate() and alerts see a 0
	// before the first reload.
	m.reloads.WithLabelValues("applied")
	m.reloads.WithLabelValues("rejected")
	m.reg.MustRegister(m.inbound, m.outbound, m.handle, m.depth, m.dead, m.reloads, m.limited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// storeMetrics exposes how PostgreSQL's message transactions ended: written
// without locks, or gone on under locks after that was refused. Both stay 0
// on SQLite. counts is Store.OptimisticCounts.
func (m *metrics) storeMetrics(counts func() (unlocked, fellBack int64)) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "safeflow_store_unlocked_writes_total",
			Help: "Messages written on PostgreSQL without locks, in two round trips."},
			func() float64 { u, _ := counts(); return float64(u) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "safeflow_store_lock_fallbacks_total",
			Help: "Messages on PostgreSQL that went on under locks because their write without locks was refused (a race with another message of the conversation, or work it does not cover)."},
			func() float64 { _, f := counts(); return float64(f) }),
	)
}
