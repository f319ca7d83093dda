package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Traces returns the four load traces of docs/design.md's autoscaler goals, for a target of 5,000
// connections per pod. Each is deterministic (seeded noise).
func Traces() []Trace {
	return []Trace{
		{
			Name:        "surge",
			Description: "0 → 50,000 connections in 60 s, then flat for 10 min",
			Duration:    11 * time.Minute,
			Demand: func(t time.Duration) float64 {
				return 50000 * min(t.Seconds()/60, 1)
			},
			Settles: true,
		},
		{
			Name:        "daily",
			Description: "one day from the 04:00 trough (3,000) to the 16:00 peak (50,000) and back, ±2% noise",
			Duration:    24 * time.Hour,
			Demand: func() func(time.Duration) float64 {
				n := newNoise(2, 24*time.Hour, 60*time.Second)
				return func(t time.Duration) float64 {
					day := 3000 + 47000*(1-math.Cos(2*math.Pi*t.Seconds()/86400))/2
					return day * (1 + 0.02*n.at(t))
				}
			}(),
		},
		{
			Name: "storm",
			Description: "42,000 connections on 10 pods; at 2 min a node drain evicts the 3 busiest pods " +
				"(their clients reconnect while replacements start); at 10 min the load falls to 27,000 " +
				"and the operator drains pods of its own",
			Duration: 25 * time.Minute,
			Demand: func() func(time.Duration) float64 {
				n := newNoise(3, 25*time.Minute, 20*time.Second)
				return func(t time.Duration) float64 {
					base := 42000.0
					if s := t.Seconds(); s > 600 {
						base -= 15000 * min((s-600)/60, 1)
					}
					return base * (1 + 0.01*n.at(t))
				}
			}(),
			InitialReplicas: 10,
			Evictions:       []Eviction{{At: 2 * time.Minute, Pods: 3}},
			Settles:         true,
		},
		plateau(25000, 4),
	}
}

// plateau is a noisy steady load: mean ± 4% (std), correlated over 20 s,
// for an hour, starting on a fleet sized for the mean.
func plateau(mean float64, seed uint64) Trace {
	n := newNoise(seed, time.Hour, 20*time.Second)
	return Trace{
		Name:        "plateau",
		Description: fmt.Sprintf("%.0f ± 4%% (std) noise for 1 h", mean),
		Duration:    time.Hour,
		Demand: func(t time.Duration) float64 {
			return mean * (1 + 0.04*n.at(t))
		},
		InitialReplicas: int32(math.Ceil(mean/5000)) + 1,
		NoFlap:          true,
	}
}

// noise is a seeded AR(1) process sampled once a second with unit variance
// and correlation time tau, linearly interpolated: the slow wander of a
// real audience rather than white noise, which averages away.
type noise struct{ v []float64 }

func newNoise(seed uint64, d, tau time.Duration) noise {
	r := rand.New(rand.NewPCG(seed, 0x5ca1e))
	a := math.Exp(-1 / tau.Seconds())
	b := math.Sqrt(1 - a*a)
	v := make([]float64, int(d.Seconds())+2)
	v[0] = r.NormFloat64()
	for i := 1; i < len(v); i++ {
		v[i] = a*v[i-1] + b*r.NormFloat64()
	}
	return noise{v}
}

func (n noise) at(t time.Duration) float64 {
	s := t.Seconds()
	i := int(s)
	if i+1 >= len(n.v) {
		return n.v[len(n.v)-1]
	}
	f := s - float64(i)
	return n.v[i]*(1-f) + n.v[i+1]*f
}
