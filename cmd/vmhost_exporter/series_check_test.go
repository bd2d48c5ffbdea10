package main

import (
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// expectedSeries is one series an end-to-end test expects with its exact
// value; want -1 means the series must be absent.
type expectedSeries struct {
	name   string
	labels map[string]string
	want   float64
}

// checkSeries reports every case of cases that mf does not meet, naming
// the situation (what) it was read in.
func checkSeries(t *testing.T, what string, mf map[string]*dto.MetricFamily, cases []expectedSeries) {
	t.Helper()
	for _, c := range cases {
		v, ok := testenv.Value(mf, c.name, c.labels)
		switch {
		case c.want == -1 && ok:
			t.Errorf("%s: %s%v = %v, want absent", what, c.name, c.labels, v)
		case c.want != -1 && (!ok || v != c.want):
			t.Errorf("%s: %s%v = %v (present %v), want %v", what, c.name, c.labels, v, ok, c.want)
		}
	}
}
