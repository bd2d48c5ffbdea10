// Command vmhost_exporter exposes host, libvirt VM and backup metrics of a
// KVM hypervisor host for Prometheus. This file holds flags and wiring only;
// the collectors live in ../../collector.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"
	// The zone database is built in (about 450 KB) so that TZ and a backup
	// job's time_zone resolve on a minimal host or container without the
	// tzdata package; a host that has /usr/share/zoneinfo still wins, as
	// Go reads the system's files first, so a tzdata update of the
	// distribution (a country changing its DST rules) applies without a
	// rebuild.
	_ "time/tzdata"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	promcollectors "github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	nodecollector "github.com/prometheus/node_exporter/collector"

	"github.com/vmhost-exporter/vmhost_exporter/collector/backup"
	"github.com/vmhost-exporter/vmhost_exporter/collector/libvirt"
)

const programName = "vmhost_exporter"

// defaultBackupConfig is the path that may be absent without an error: a host
// without backup jobs is a valid host.
const defaultBackupConfig = "/etc/vmhost_exporter/backup.yml"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	app := kingpin.CommandLine
	var (
		metricsPath = app.Flag("web.telemetry-path",
			"Path under which to expose metrics.").Default("/metrics").String()
		disableExporterMetrics = app.Flag("web.disable-exporter-metrics",
			"Exclude metrics about the exporter itself (promhttp_*, process_*, go_*).").Bool()
		maxRequests = app.Flag("web.max-requests",
			"Maximum number of parallel scrape requests. Use 0 to disable.").Default("40").Int()
		enableLifecycle = app.Flag("web.enable-lifecycle",
			"Enable POST /-/reload (reloads the backup configuration, like SIGHUP).").Default("false").Bool()
		readTimeout = durationFlag(app, "web.read-timeout",
			"Maximum time to read a whole request, headers included.", "30s")
		writeTimeout = durationFlag(app, "web.write-timeout",
			"Maximum time from the end of a request's headers to the end of its answer. A client that does not read its answer loses its connection then and frees its --web.max-requests slot; keep it above --libvirt.timeout plus the time to send the largest /metrics page.", "60s")
		idleTimeout = durationFlag(app, "web.idle-timeout",
			"How long an idle keep-alive connection stays open.", "2m")
		disableDefaults = app.Flag("collector.disable-defaults",
			"Set all collectors to disabled by default, the libvirt and backup collectors included.").Default("false").Bool()

		libvirtEnabledSet bool
		libvirtEnabled    = app.Flag("collector.libvirt",
			"Enable the libvirt collector (default: enabled).").Default("true").IsSetByUser(&libvirtEnabledSet).Bool()
		libvirtSocketSet bool
		libvirtSocket    = app.Flag("libvirt.socket",
			"Path of libvirtd's read-only socket. When not given and the default is absent, "+libvirt.VirtqemudSocket+" (EL9's modular virtqemud) is used; both are looked for again at each reconnect.").Default(libvirt.LibvirtdSocket).IsSetByUser(&libvirtSocketSet).String()
		libvirtURI = app.Flag("libvirt.uri",
			"libvirt URI opened over the socket (e.g. qemu:///system, or test:///path/node.xml in tests).").Default("qemu:///system").String()
		libvirtTimeout = durationFlag(app, "libvirt.timeout",
			"Upper bound on the libvirt part of one scrape.", "5s")
		libvirtMetadataRefresh = durationFlag(app, "libvirt.metadata-refresh-interval",
			"Period within which cached domain XML (role, disks, interfaces, vCPUs) and snapshot times are re-read in the background. Domains named by a libvirt event (defined, started, metadata or devices changed) and new domains are read at the next scrape.", "5m")
		libvirtStatsBatches = app.Flag("libvirt.stats-batches",
			"Lists of running guests whose stats are asked for at once; libvirt asks the guests of one list one after the other. 1 is one serial call for all domains, and every request of a scrape waits for the one before. Keep it below libvirtd's max_client_requests (default 5).").Default("4").Int()
		libvirtJobInfo = app.Flag("libvirt.job-info",
			"Ask each running guest for its current job (libvirt_domain_job_info_*: migrations, libvirt backups): one call per running guest a scrape, since libvirt has no bulk call for jobs. --no-libvirt.job-info spares them.").Default("true").Bool()

		backupEnabledSet bool
		backupEnabled    = app.Flag("collector.backup",
			"Enable the backup collector (default: enabled).").Default("true").IsSetByUser(&backupEnabledSet).Bool()
		backupConfigExplicit bool
		backupConfigFile     = app.Flag("backup.config-file",
			"Backup jobs configuration file. A missing default file means no jobs; a file named on the command line must exist.").Default(defaultBackupConfig).IsSetByUser(&backupConfigExplicit).String()
		backupConfigCheck = app.Flag("backup.config-check",
			"Validate the backup configuration file, then exit.").Default("false").Bool()
		backupExplain = app.Flag("backup.explain",
			"Scan every backup job of the configuration once, print each job's verdict with its evidence (what /backups shows), then exit: 1 when a job's newest run failed, its scan failed or a path of its evidence is unreadable.").Default("false").Bool()
		backupScanInterval = durationFlag(app, "backup.scan-interval",
			"Time between background scans of the backup jobs (scrapes never scan).", "5m")
		backupScanConcurrency = app.Flag("backup.scan-concurrency",
			"Backup jobs scanned at the same time.").Default("2").Int()
		backupScanTimeout = durationFlag(app, "backup.scan-timeout",
			"Longest one job's scan may take before it is reported as failed (scan_success 0) and stops holding up the other jobs; a hung file system is the usual cause.", "10m")

		memoryLimit = app.Flag("runtime.memory-limit",
			"Soft memory limit of the Go runtime in bytes (units like 40MiB allowed): above it the garbage collector works harder. 0 disables it; the GOMEMLIMIT environment variable, when set, wins.").Default("40MiB").Bytes()

		toolkitFlags = kingpinflag.AddFlags(app, ":9851")
	)

	promslogConfig := &promslog.Config{}
	promslogflag.AddFlags(app, promslogConfig)
	app.Version(version.Print(programName))
	app.UsageWriter(os.Stdout)
	app.HelpFlag.Short('h')
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "%s: error: %s, try --help\n", programName, err)
		return 2
	}
	if *libvirtStatsBatches < 1 {
		fmt.Fprintf(os.Stderr, "%s: error: --libvirt.stats-batches: must be at least 1, got %d, try --help\n", programName, *libvirtStatsBatches)
		return 2
	}
	logger := promslog.New(promslogConfig)
	// SIGHUP is always handled, from the start: the shipped unit's
	// ExecReload sends it, and its default action (exit) would stop the
	// service for good on a host whose backup collector is off.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	// A soft limit keeps the exporter small on hosts where every MiB belongs
	// to the VMs: the heap of a scrape or a backup walk is short-lived, and
	// without a limit the runtime would let it double before collecting.
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && *memoryLimit > 0 {
		debug.SetMemoryLimit(int64(*memoryLimit))
	}

	// node_exporter semantics: with --collector.disable-defaults only the
	// collectors named explicitly on the command line run. Our own collectors
	// follow the same rule so the flag means the same thing everywhere.
	if *disableDefaults {
		nodecollector.DisableDefaultCollectors()
		if !libvirtEnabledSet {
			*libvirtEnabled = false
		}
		if !backupEnabledSet {
			*backupEnabled = false
		}
	}

	if *backupConfigCheck {
		return checkBackupConfig(*backupConfigFile, os.Stdout, os.Stderr)
	}
	if *backupExplain {
		return explainBackups(*backupConfigFile, backupConfigExplicit, backup.Options{
			ScanConcurrency: *backupScanConcurrency,
			ScanTimeout:     *backupScanTimeout,
		}, logger)
	}

	if err := web.Validate(*toolkitFlags.WebConfigFile); err != nil {
		logger.Error("Invalid web configuration file", "file", *toolkitFlags.WebConfigFile, "err", err)
		return 1
	}

	logger.Info("Starting "+programName, "version", version.Info())
	logger.Info("Build context", "build_context", version.BuildContext())
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		logger.Warn(programName + " is running as root; it only needs the read-only libvirt socket and read access to backup paths.")
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(versioncollector.NewCollector(programName))

	nc, err := nodecollector.NewNodeCollector(logger)
	if err != nil {
		logger.Error("Cannot create host collectors", "err", err)
		return 1
	}
	if len(nc.Collectors) > 0 {
		if err := registry.Register(nc); err != nil {
			logger.Error("Cannot register host collectors", "err", err)
			return 1
		}
	}
	logger.Info("Enabled host collectors", "collectors", slices.Sorted(maps.Keys(nc.Collectors)))

	var libvirtGatherer prometheus.Gatherer
	if *libvirtEnabled {
		sockets := libvirt.DefaultSockets
		if libvirtSocketSet {
			sockets = []string{*libvirtSocket}
		}
		lc := libvirt.New(libvirt.Config{
			Sockets:         sockets,
			URI:             *libvirtURI,
			Timeout:         *libvirtTimeout,
			MetadataRefresh: *libvirtMetadataRefresh,
			StatsBatches:    *libvirtStatsBatches,
			NoJobInfo:       !*libvirtJobInfo,
		}, logger.With("collector", "libvirt"))
		defer lc.Close()
		if err := lc.Probe(); err != nil {
			logger.Warn("libvirt is not reachable now; libvirt_up stays 0 until it is", "socket", strings.Join(sockets, " or "), "uri", *libvirtURI, "err", err)
		}
		registry.MustRegister(lc)
		// /backups asks libvirt which VMs the host defines (and their
		// oldest snapshots) through a registry of its own: the host
		// collectors are not run for it.
		lr := prometheus.NewRegistry()
		lr.MustRegister(lc)
		libvirtGatherer = lr
	}

	var reload func() error
	var backupsPage http.Handler
	if *backupEnabled {
		load := func(path string) (*backup.Config, error) {
			cfg, err := backup.LoadConfig(path)
			if errors.Is(err, fs.ErrNotExist) && !backupConfigExplicit {
				return &backup.Config{}, nil
			}
			return cfg, err
		}
		cfg, err := load(*backupConfigFile)
		if err != nil {
			logger.Error("Cannot load backup configuration", "err", err)
			return 1
		}
		if len(cfg.Jobs) == 0 {
			logger.Info("No backup jobs configured; no backups are monitored", "file", *backupConfigFile)
		}
		bc := backup.New(cfg, backup.Options{
			ScanInterval:    *backupScanInterval,
			ScanConcurrency: *backupScanConcurrency,
			ScanTimeout:     *backupScanTimeout,
			Load:            load,
		}, logger.With("collector", "backup"))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go bc.Run(ctx)
		registry.MustRegister(bc)
		backupsPage = backupsHandler(bc, libvirtGatherer, logger)
		reload = func() error {
			if err := bc.Reload(*backupConfigFile); err != nil {
				logger.Error("Backup configuration reload failed; the previous configuration stays in force", "err", err)
				return err
			}
			logger.Info("Backup configuration reloaded", "file", *backupConfigFile)
			return nil
		}
	}

	go func() {
		for range hup {
			if reload == nil {
				logger.Info("SIGHUP received; the backup collector is disabled, nothing to reload")
				continue
			}
			_ = reload()
		}
	}()

	var gatherers prometheus.Gatherers = prometheus.Gatherers{registry}
	handlerOpts := promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: *maxRequests,
	}
	var metricsHandler http.Handler
	if *disableExporterMetrics {
		metricsHandler = promhttp.HandlerFor(gatherers, handlerOpts)
	} else {
		selfRegistry := prometheus.NewRegistry()
		selfRegistry.MustRegister(
			promcollectors.NewProcessCollector(promcollectors.ProcessCollectorOpts{}),
			promcollectors.NewGoCollector(),
		)
		handlerOpts.Registry = selfRegistry
		metricsHandler = promhttp.InstrumentMetricHandler(selfRegistry,
			promhttp.HandlerFor(append(gatherers, selfRegistry), handlerOpts))
	}

	mux := http.NewServeMux()
	mux.Handle(*metricsPath, metricsHandler)
	mux.HandleFunc("/-/reload", reloadHandler(*enableLifecycle, reload))
	links := []web.LandingLinks{{Address: *metricsPath, Text: "Metrics"}}
	if backupsPage != nil {
		mux.Handle("/backups", backupsPage)
		links = append(links, web.LandingLinks{Address: "/backups", Text: "Backups", Description: "each backup job's verdict with its evidence, and each VM's protection"})
	}
	if *metricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "vmhost_exporter",
			Description: "Prometheus exporter for KVM/libvirt hypervisor hosts: host, VMs and backups",
			Version:     version.Info(),
			Links:       links,
			// The exporter serves no /debug/pprof: the toolkit's
			// profiling links would be dead ones.
			Profiling: "false",
		})
		if err != nil {
			logger.Error("Cannot build landing page", "err", err)
			return 1
		}
		mux.Handle("/", landing)
	}

	server := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: min(10*time.Second, *readTimeout),
		ReadTimeout:       *readTimeout,
		WriteTimeout:      *writeTimeout,
		IdleTimeout:       *idleTimeout,
	}
	if err := web.ListenAndServe(server, toolkitFlags, logger); err != nil {
		logger.Error("HTTP server stopped", "err", err)
		return 1
	}
	return 0
}

// reloadHandler serves /-/reload the way Prometheus does: only when the
// operator enabled it, only for POST. Why a config was refused goes to the
// log, not to the HTTP client, which may be anyone who can reach the port.
func reloadHandler(enabled bool, reload func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !enabled {
			http.Error(w, "Lifecycle API is not enabled (--web.enable-lifecycle).", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "Use POST to reload the backup configuration.", http.StatusMethodNotAllowed)
			return
		}
		if reload == nil {
			fmt.Fprintln(w, "The backup collector is disabled; nothing to reload.")
			return
		}
		if err := reload(); err != nil {
			http.Error(w, "Reload failed; the previous configuration stays in force. See the exporter's log for why.", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Backup configuration reloaded.")
	}
}

// checkBackupConfig validates the file (--backup.config-check) and says
// which paths are not absolute (an error: they would be read relative to
// wherever the service starts) or do not exist now (a warning: a typo, or
// a backup that has not run yet). It prints as a compiler does, not
// through the log: one "FILE:LINE: message" on stderr per problem, by
// line, which an operator reads without logfmt's escaped quotes and an
// editor jumps to; "FILE: valid, N jobs" on stdout when the file is fine.
func checkBackupConfig(path string, stdout, stderr io.Writer) int {
	cfg, err := backup.LoadConfig(path)
	var ce *backup.ConfigError
	var pe *fs.PathError
	switch {
	case errors.As(err, &ce):
		for _, p := range ce.Problems {
			printProblem(stderr, ce.File, "", p)
		}
		return 1
	case errors.As(err, &pe):
		fmt.Fprintf(stderr, "%s: %v\n", path, pe.Err) // "no such file or directory"
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return 1
	}
	problems, warnings := cfg.CheckPaths()
	type finding struct {
		kind string
		backup.Problem
	}
	var findings []finding
	for _, p := range problems {
		findings = append(findings, finding{"", p})
	}
	for _, w := range warnings {
		findings = append(findings, finding{"warning: ", w})
	}
	slices.SortStableFunc(findings, func(a, b finding) int { return a.Line - b.Line })
	for _, f := range findings {
		printProblem(stderr, path, f.kind, f.Problem)
	}
	if len(problems) > 0 {
		return 1
	}
	jobs := "jobs"
	if len(cfg.Jobs) == 1 {
		jobs = "job"
	}
	fmt.Fprintf(stdout, "%s: valid, %d %s\n", path, len(cfg.Jobs), jobs)
	return 0
}

// printProblem writes "FILE:LINE: kind message", or "FILE: kind message"
// for a problem of the whole file.
func printProblem(w io.Writer, file, kind string, p backup.Problem) {
	if p.Line > 0 {
		fmt.Fprintf(w, "%s:%d: %s%s\n", file, p.Line, kind, p.Message)
		return
	}
	fmt.Fprintf(w, "%s: %s%s\n", file, kind, p.Message)
}

// explainBackups is --backup.explain: one scan of every job, its verdicts
// and evidence on stdout, exit status 1 when any job failed or was judged
// on part of its evidence, so that an operator can try a new config (as
// the service user) before deploying it.
func explainBackups(path string, explicit bool, opts backup.Options, logger *slog.Logger) int {
	cfg, err := backup.LoadConfig(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		cfg, err = &backup.Config{}, nil
	}
	if err != nil {
		logger.Error("Cannot load backup configuration", "err", err)
		return 1
	}
	ex := backup.ExplainOnce(context.Background(), cfg, opts, logger.With("collector", "backup"))
	if err := ex.WriteText(os.Stdout); err != nil {
		logger.Error("Cannot write the explanation", "err", err)
		return 1
	}
	if len(ex.Failed) > 0 || len(ex.PartlyRead) > 0 {
		return 1
	}
	return 0
}

// backupsHandler serves /backups: the last scan's verdicts with their
// evidence. When libvirt is enabled it is asked (one bounded gather) for
// the VMs the host defines, so that a VM never backed up has its row.
func backupsHandler(bc *backup.Collector, libvirtGatherer prometheus.Gatherer, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var opts backup.ExplainOptions
		if libvirtGatherer != nil {
			opts.HostVMs = hostVMs(libvirtGatherer)
		}
		var buf bytes.Buffer
		if err := bc.Explain(opts).WriteHTML(&buf, version.Version); err != nil {
			logger.Error("Cannot render /backups", "err", err)
			http.Error(w, "Cannot render the page; see the exporter's log.", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		_, _ = w.Write(buf.Bytes())
	})
}

// hostVMs reads the VMs defined on the host and their oldest snapshot from
// the libvirt collector's series; nil (unknown) while libvirt is down.
func hostVMs(g prometheus.Gatherer) map[string]backup.HostVM {
	mfs, _ := g.Gather() // a broken domain costs its own series, not the list
	up := false
	vms := map[string]backup.HostVM{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			domain := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "domain" {
					domain = l.GetValue()
				}
			}
			switch mf.GetName() {
			case "libvirt_up":
				up = m.GetGauge().GetValue() == 1
			case "libvirt_domain_info_state":
				if _, ok := vms[domain]; !ok && domain != "" {
					vms[domain] = backup.HostVM{}
				}
			case "libvirt_domain_snapshot_oldest_timestamp_seconds":
				if domain != "" {
					sec := m.GetGauge().GetValue()
					vms[domain] = backup.HostVM{OldestSnapshot: time.Unix(0, int64(sec*1e9))}
				}
			}
		}
	}
	if !up {
		return nil
	}
	return vms
}

// namedDuration is a duration flag whose parse error names the flag (kingpin's
// own says only "invalid duration") and that takes Prometheus durations
// ("1d" too).
type namedDuration struct {
	name string
	d    time.Duration
}

func (n *namedDuration) Set(s string) error {
	v, err := model.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("--%s: %q is not a duration (examples: 500ms, 5s, 1m)", n.name, s)
	}
	if v <= 0 {
		return fmt.Errorf("--%s: must be positive, got %q", n.name, s)
	}
	n.d = time.Duration(v)
	return nil
}

func (n *namedDuration) String() string { return model.Duration(n.d).String() }

func durationFlag(app *kingpin.Application, name, help, def string) *time.Duration {
	v := &namedDuration{name: name}
	app.Flag(name, help).Default(def).SetValue(v)
	return &v.d
}
