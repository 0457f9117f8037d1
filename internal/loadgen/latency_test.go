package loadgen

import (
	"math"
	"testing"
	"time"
)

func ms(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, v := range n {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		// Shuffled on purpose: NewLatencies must sort.
		hundred[i] = time.Duration((i*37)%100+1) * time.Millisecond
	}
	tests := []struct {
		Label    string
		Samples  []time.Duration
		P        float64
		Expected time.Duration
	}{
		{"NoSamplesGiveZero", nil, 50, 0},
		{"OneSampleIsEveryPercentile", ms(7), 99, 7 * time.Millisecond},
		{"P50OfHundredIsTheFiftieth", hundred, 50, 50 * time.Millisecond},
		{"P90OfHundredIsTheNinetieth", hundred, 90, 90 * time.Millisecond},
		{"P99OfHundredIsTheNinetyNinth", hundred, 99, 99 * time.Millisecond},
		{"P100IsTheSlowest", hundred, 100, 100 * time.Millisecond},
		{"P0IsTheFastest", hundred, 0, 1 * time.Millisecond},
		{"NegativeClampsToFastest", hundred, -5, 1 * time.Millisecond},
		{"AboveHundredClampsToSlowest", hundred, 250, 100 * time.Millisecond},
		{"NaNGivesFastest", hundred, math.NaN(), 1 * time.Millisecond},
		// Nearest rank: ceil(0.5·4) = 2nd sample, not an interpolation.
		{"NearestRankDoesNotInterpolate", ms(10, 40, 20, 30), 50, 20 * time.Millisecond},
		{"P99OfFourIsTheSlowest", ms(1, 2, 3, 1000), 99, time.Second},
		{"P75OfFourIsTheThird", ms(4, 1, 3, 2), 75, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			if got := NewLatencies(tt.Samples).Percentile(tt.P); got != tt.Expected {
				t.Errorf("Percentile(%v) = %v, want %v", tt.P, got, tt.Expected)
			}
		})
	}
}

func TestNewLatenciesLeavesItsInputAlone(t *testing.T) {
	in := ms(3, 1, 2)
	l := NewLatencies(in)
	if in[0] != 3*time.Millisecond {
		t.Errorf("NewLatencies sorted its input in place: %v", in)
	}
	if l[0] != time.Millisecond || l[2] != 3*time.Millisecond {
		t.Errorf("NewLatencies = %v, want sorted", l)
	}
}

func TestMean(t *testing.T) {
	tests := []struct {
		Label    string
		Samples  []time.Duration
		Expected time.Duration
	}{
		{"Empty", nil, 0},
		{"Average", ms(1, 2, 3, 6), 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			if got := NewLatencies(tt.Samples).Mean(); got != tt.Expected {
				t.Errorf("Mean = %v, want %v", got, tt.Expected)
			}
		})
	}
}
