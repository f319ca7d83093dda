// Package depcheck exports whether a component reaches the services it
// depends on (Postgres, Redis) as chatr_dependency_up{component,dependency}, measured
// when Prometheus scrapes: each scrape pings each dependency once, with a
// short timeout, so the series is as fresh as the scrape and costs one
// round trip per dependency per scrape interval.
package depcheck

import (
	"context"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Timeout bounds one ping: a dependency slower than this counts as down.
const Timeout = time.Second

// Ping checks one dependency.
type Ping func(ctx context.Context) error

type collector struct {
	names  []string
	pings  map[string]Ping
	up     *prometheus.Desc
	answer *prometheus.Desc
}

// New returns the collector of the dependencies in pings, by name, for one
// component (api, streamer, verifier). The component is a label so that a
// process serving several components on one registry (chatrd dev) exports
// each component's view of a dependency as its own series.
func New(component string, pings map[string]Ping) prometheus.Collector {
	comp := prometheus.Labels{"component": component}
	c := &collector{pings: pings,
		up: prometheus.NewDesc("chatr_dependency_up",
			"1 if the dependency answered a ping within 1s at this scrape, else 0.", []string{"dependency"}, comp),
		answer: prometheus.NewDesc("chatr_dependency_ping_seconds",
			"How long the dependency took to answer this scrape's ping (the timeout when it did not).", []string{"dependency"}, comp),
	}
	for n := range pings {
		c.names = append(c.names, n)
	}
	sort.Strings(c.names)
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.answer
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, n := range c.names {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		start := time.Now()
		err := c.pings[n](ctx)
		took := time.Since(start)
		cancel()
		up := 1.0
		if err != nil {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, n)
		ch <- prometheus.MustNewConstMetric(c.answer, prometheus.GaugeValue, took.Seconds(), n)
	}
}
