// Package e2e holds the end-to-end tests: exporter → Prometheus with the
// shipped rules → Alertmanager → a webhook receiver, with real conditions
// caused on real components.
package e2e
