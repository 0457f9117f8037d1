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

// storeMetrics exposes how message transactions ended: written without
// locks (on SQLite: read beside the single writer, only the writes in its
// turn), or gone on under locks (in the writer's turn) after that was
// refused. counts is Store.OptimisticCounts.
func (m *metrics) storeMetrics(counts func() (unlocked, fellBack int64)) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "safeflow_store_unlocked_writes_total",
			Help: "Messages written without locks: on PostgreSQL in two round trips, on SQLite with only their writes in the single writer's turn."},
			func() float64 { u, _ := counts(); return float64(u) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "safeflow_store_lock_fallbacks_total",
			Help: "Messages that went on under locks (on SQLite: wholly in the writer's turn) because their write without locks was refused (a race with another message of the conversation, or work it does not cover)."},
			func() float64 { _, f := counts(); return float64(f) }),
	)
}
