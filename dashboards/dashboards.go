// Package dashboards generates the Grafana dashboards of vmhost_exporter
// with grafana-foundation-sdk. The JSON in this directory is the output of
// `make dashboards` and is checked against the generator by the tests, so
// the Go code is the source and the JSON is what operators import.
package dashboards

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Stable uids: links between the dashboards and bookmarks rely on them.
const (
	UIDHostFleet = "vmhost-host-fleet"
	UIDVMs       = "vmhost-vms"
	UIDBackups   = "vmhost-backups"
	UIDCapacity  = "vmhost-capacity"
	// UIDProtection: each VM's protection in layers (issue 26).
	UIDProtection = "vmhost-vm-protection"
)

// MinGrafanaVersion is the oldest Grafana that knows the dashboards'
// schemaVersion (42, grafana-foundation-sdk v0.0.22); README says so and
// __requires tells Grafana's importer.
const MinGrafanaVersion = "12.1.0"

// importInput is the data source Grafana's importer asks for: every
// dashboard imports like a community one, the chosen data source becoming
// the default of the datasource variable.
const importInput = "DS_PROMETHEUS"

var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

type kind int

const (
	timeSeries kind = iota
	statPanel
	tablePanel
	heatmapPanel
	barGauge
)

type query struct {
	expr, legend string
	instant      bool // tables and stats of the current value
}

type step struct {
	value float64
	color string
}

// panel is what each dashboard panel needs; build turns it into the SDK's
// builder of its kind.
type panel struct {
	kind        kind
	title       string
	description string
	unit        string
	queries     []query
	base        string // colour below the first step
	steps       []step // threshold steps, drawn as bands on time series
	mappings    []dashboard.ValueMapping
	overrides   map[string][]dashboard.DynamicConfigValue // by field name
	min, max    *float64
	width       uint32
	height      uint32
}

func ptr(f float64) *float64 { return &f }

func (p panel) thresholds() *dashboard.ThresholdsConfigBuilder {
	base := p.base
	if base == "" {
		base = "green"
	}
	steps := []dashboard.Threshold{{Value: nil, Color: base}}
	for _, s := range p.steps {
		steps = append(steps, dashboard.Threshold{Value: ptr(s.value), Color: s.color})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)
}

func (p panel) targets() []cog.Builder[variants.Dataquery] {
	var out []cog.Builder[variants.Dataquery]
	for i, q := range p.queries {
		b := prometheus.NewDataqueryBuilder().
			Expr(q.expr).
			RefId(string(rune('A' + i))).
			Datasource(datasource)
		if q.legend != "" {
			b = b.LegendFormat(q.legend)
		}
		if q.instant {
			b = b.Instant().Format(prometheus.PromQueryFormatTable)
		} else {
			b = b.Range()
		}
		out = append(out, b)
	}
	return out
}

func (p panel) build() cog.Builder[dashboard.Panel] {
	w, h := p.width, p.height
	if w == 0 {
		w = 12
	}
	if h == 0 {
		h = 8
	}
	switch p.kind {
	case statPanel:
		b := stat.NewPanelBuilder().Title(p.title).Description(p.description).Unit(p.unit).
			Datasource(datasource).Targets(p.targets()).Thresholds(p.thresholds()).Span(w).Height(h).
			ColorMode(common.BigValueColorModeBackground).GraphMode(common.BigValueGraphModeNone)
		if p.mappings != nil {
			b = b.Mappings(p.mappings)
		}
		return withMinMax(b, p)
	case tablePanel:
		b := table.NewPanelBuilder().Title(p.title).Description(p.description).Unit(p.unit).
			Datasource(datasource).Targets(p.targets()).Thresholds(p.thresholds()).Span(w).Height(h)
		if len(p.queries) > 1 {
			b = b.WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}})
		}
		b = b.WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
			"excludeByName": map[string]any{"Time": true, "job": true, "__name__": true},
		}})
		if p.mappings != nil {
			b = b.Mappings(p.mappings)
		}
		for _, name := range slices.Sorted(maps.Keys(p.overrides)) {
			b = b.OverrideByName(name, p.overrides[name])
		}
		return b
	case heatmapPanel:
		return heatmap.NewPanelBuilder().Title(p.title).Description(p.description).Unit(p.unit).
			Datasource(datasource).Targets(p.targets()).Span(w).Height(h).Calculate(true)
	case barGauge:
		b := bargauge.NewPanelBuilder().Title(p.title).Description(p.description).Unit(p.unit).
			Datasource(datasource).Targets(p.targets()).Thresholds(p.thresholds()).Span(w).Height(h).
			DisplayMode(common.BarGaugeDisplayModeLcd).Orientation(common.VizOrientationHorizontal)
		return withMinMax(b, p)
	default:
		b := timeseries.NewPanelBuilder().Title(p.title).Description(p.description).Unit(p.unit).
			Datasource(datasource).Targets(p.targets()).Thresholds(p.thresholds()).Span(w).Height(h)
		if len(p.steps) > 0 {
			b = b.ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeLineAndArea))
		}
		return withMinMax(b, p)
	}
}

type minMaxer[T any] interface {
	Min(float64) T
	Max(float64) T
}

func withMinMax[T minMaxer[T]](b T, p panel) T {
	if p.min != nil {
		b = b.Min(*p.min)
	}
	if p.max != nil {
		b = b.Max(*p.max)
	}
	return b
}

// Variables shared by the dashboards.
func datasourceVariable() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")
}

func labelVariable(name, label, query string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Datasource(datasource).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Multi(true).
		IncludeAll(true).
		AllValue(".*").
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

func links(except string) []cog.Builder[dashboard.DashboardLink] {
	var out []cog.Builder[dashboard.DashboardLink]
	for _, l := range []struct{ uid, title string }{
		{UIDHostFleet, "Host fleet"}, {UIDVMs, "VMs"}, {UIDBackups, "Backups"}, {UIDCapacity, "Capacity"}, {UIDProtection, "VM protection"},
	} {
		if l.uid == except {
			continue
		}
		out = append(out, dashboard.NewDashboardLinkBuilder(l.title).
			Type(dashboard.DashboardLinkTypeLink).
			Url("/d/"+l.uid).
			Icon("dashboard").
			IncludeVars(true).
			KeepTime(true))
	}
	return out
}

func newDashboard(uid, title, description string, panels []panel, vars ...cog.Builder[dashboard.VariableModel]) *dashboard.DashboardBuilder {
	b := dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"vmhost_exporter", "kvm", "libvirt"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("1m").
		Time("now-24h", "now").
		Timezone(common.TimeZoneBrowser).
		Links(links(uid)).
		WithVariable(datasourceVariable())
	for _, v := range vars {
		b = b.WithVariable(v)
	}
	for _, p := range panels {
		b = b.WithPanel(p.build())
	}
	return b
}

// Render builds every dashboard and returns its JSON by file name.
func Render() (map[string][]byte, error) {
	out := map[string][]byte{}
	for name, b := range map[string]*dashboard.DashboardBuilder{
		"host-fleet.json": HostFleet(),
		"vms.json":        VMs(),
		"backups.json":    Backups(),
		"capacity.json":   Capacity(),
		"protection.json": Protection(),
	} {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", name, err)
		}
		data, err := forImport(d)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", name, err)
		}
		out[name] = append(data, '\n')
	}
	return out, nil
}

// forImport adds what Grafana's "export for sharing externally" adds and
// its importer reads: __inputs (the importer asks for a Prometheus data
// source), __requires (the oldest Grafana and the plugins), and the
// datasource variable defaulting to the chosen data source. The SDK's
// types have no fields for them, so they are added to the encoded JSON.
func forImport(d dashboard.Dashboard) ([]byte, error) {
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	m["__inputs"] = []map[string]any{{
		"name": importInput, "label": "Prometheus", "description": "The Prometheus (or compatible) data source with vmhost_exporter's series and recording rules.",
		"type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus",
	}}
	requires := []map[string]any{
		{"type": "grafana", "id": "grafana", "name": "Grafana", "version": MinGrafanaVersion},
		{"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
	}
	seen := map[string]bool{}
	if panels, ok := m["panels"].([]any); ok {
		for _, p := range panels {
			if t, ok := p.(map[string]any)["type"].(string); ok && !seen[t] {
				seen[t] = true
				requires = append(requires, map[string]any{"type": "panel", "id": t, "name": t, "version": ""})
			}
		}
	}
	m["__requires"] = requires
	if tpl, ok := m["templating"].(map[string]any); ok {
		if list, ok := tpl["list"].([]any); ok {
			for _, v := range list {
				if v := v.(map[string]any); v["name"] == "datasource" {
					v["current"] = map[string]any{"text": "${" + importInput + "}", "value": "${" + importInput + "}"}
				}
			}
		}
	}
	return json.MarshalIndent(m, "", "  ")
}

func pct(f float64) string { return strconv.FormatFloat(f*100, 'f', -1, 64) + " %" }

func stateMappings() []dashboard.ValueMapping {
	opts := map[string]dashboard.ValueMappingResult{}
	for code, s := range map[int][2]string{
		0: {"no state", "gray"}, 1: {"running", "green"}, 2: {"blocked", "yellow"}, 3: {"paused", "orange"},
		4: {"shutting down", "yellow"}, 5: {"shut off", "blue"}, 6: {"crashed", "red"}, 7: {"suspended", "purple"},
	} {
		opts[strconv.Itoa(code)] = dashboard.ValueMappingResult{Text: cog.ToPtr(s[0]), Color: cog.ToPtr(s[1]), Index: cog.ToPtr(int32(code))}
	}
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: opts}}}
}

func okMappings(ok, bad string) []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: map[string]dashboard.ValueMappingResult{
		"1": {Text: cog.ToPtr(ok), Color: cog.ToPtr("green"), Index: cog.ToPtr(int32(0))},
		"0": {Text: cog.ToPtr(bad), Color: cog.ToPtr("red"), Index: cog.ToPtr(int32(1))},
	}}}}
}

// column renames a table column and, optionally, maps its values.
func column(display string, mappings []dashboard.ValueMapping) []dashboard.DynamicConfigValue {
	props := []dashboard.DynamicConfigValue{{Id: "displayName", Value: display}}
	if mappings != nil {
		props = append(props, dashboard.DynamicConfigValue{Id: "mappings", Value: mappings})
	}
	return props
}
