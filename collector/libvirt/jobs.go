package libvirt

import (
	"errors"
	"fmt"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// jobInfo is a domain's current job as virDomainGetJobInfo reports it: a
// live migration, a save or dump, libvirt's own backup (virsh backup-begin)
// or none (Type 0). The libvirt_domain_job_info_* series of
// inovex/prometheus-libvirt-exporter carry it.
type jobInfo struct {
	Type                                    int32
	TimeElapsedMS, TimeRemainingMS          uint64
	DataTotal, DataProcessed, DataRemaining uint64
	MemTotal, MemProcessed, MemRemaining    uint64
	FileTotal, FileProcessed, FileRemaining uint64
}

// jobInfoConcurrency is how many job info calls are on the connection at
// once. libvirtd serves max_client_requests (default 5) calls of a
// connection at a time and reads the next as one answers: a few more in
// flight keep it busy without a gap, and the scrape's other calls
// (snapshot listings, XML) still find their turn between them.
const jobInfoConcurrency = 8

// jobCalls is the job info calls of one scrape, on goroutines of their own
// so the scrape can stop waiting at its deadline. A call still waiting
// then (a guest whose query job another call holds: libvirt waits up to
// 30 s for it) ends when libvirt answers or the connection closes; its
// answer is dropped.
type jobCalls struct {
	sess    *session
	start   time.Time
	done    chan struct{}
	mu      sync.Mutex
	closed  bool
	results map[*domainResult]jobInfo
	errs    map[*domainResult]error
	asked   []*domainResult
}

// jobsWanted picks the domains whose job is asked: those libvirt runs,
// whose stats arrived complete this scrape. No stats call asks for jobs
// (ConnectGetAllDomainStats has no job group), so this is one call per
// running domain, which neither a listing nor an event can spare: no
// event announces that a job starts. A guest whose monitor did not answer
// is left out: its query job is held by the stats call still waiting on
// it, and a job info call would wait 30 s for that job, holding one of
// the connection's request slots.
func jobsWanted(domains []*domainResult) []*domainResult {
	var out []*domainResult
	for _, d := range domains {
		if d.stats.active() && len(d.errs) == 0 {
			out = append(out, d)
		}
	}
	return out
}

// startJobInfo asks for the current job of each domain, jobInfoConcurrency
// at a time, until deadline. It returns nil when there is nothing to ask
// or the driver has no job info (the answer of an earlier call on this
// session).
func (c *Collector) startJobInfo(s *session, domains []*domainResult, deadline time.Time) *jobCalls {
	if len(domains) == 0 || s.noJobInfo.Load() || c.cfg.NoJobInfo {
		return nil
	}
	j := &jobCalls{sess: s, start: time.Now(), done: make(chan struct{}), results: map[*domainResult]jobInfo{}, errs: map[*domainResult]error{}, asked: domains}
	work := make(chan *domainResult, len(domains))
	for _, d := range domains {
		work <- d
	}
	close(work)
	var wg sync.WaitGroup
	workers := min(jobInfoConcurrency, len(domains))
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			for d := range work {
				if time.Now().After(deadline) || s.noJobInfo.Load() {
					return
				}
				c.rpcCalls.Add(1)
				var ji jobInfo
				var err error
				ji.Type, ji.TimeElapsedMS, ji.TimeRemainingMS, ji.DataTotal, ji.DataProcessed, ji.DataRemaining,
					ji.MemTotal, ji.MemProcessed, ji.MemRemaining, ji.FileTotal, ji.FileProcessed, ji.FileRemaining, err = s.lv.DomainGetJobInfo(d.dom)
				if libvirtErrorIs(err, golibvirt.ErrNoSupport) {
					s.noJobInfo.Store(true) // the driver has none: not asked again on this session
				}
				j.mu.Lock()
				if !j.closed {
					if err != nil {
						j.errs[d] = err
					} else {
						j.results[d] = ji
					}
				}
				j.mu.Unlock()
			}
		}()
	}
	go func() {
		wg.Wait()
		close(j.done)
	}()
	return j
}

// finish waits for the calls until deadline and attaches what they
// returned to the domains. A domain whose call did not answer in time is
// timed out (libvirt_domain_timed_out 1) and has no job series this
// scrape; one libvirt answered with an error that says only that it has
// no job to report (undefined or stopped meanwhile, an incoming
// migration, a driver without job info) has none either; any other
// error marks the domain incomplete.
func (j *jobCalls) finish(deadline time.Time) (time.Duration, error) {
	if j == nil {
		return 0, nil
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-j.done:
	case <-timer.C:
	}
	j.mu.Lock()
	j.closed = true
	results, errs := j.results, j.errs
	j.mu.Unlock()
	var failed []error
	unanswered := 0
	for _, d := range j.asked {
		if ji, ok := results[d]; ok {
			d.job = &ji
			continue
		}
		err, answered := errs[d]
		switch {
		case !answered && j.sess.noJobInfo.Load():
			// Not asked: the driver said it has no job info.
		case !answered:
			unanswered++
			d.timedOut = true
			d.errs = append(d.errs, "job info: no answer in this scrape")
		case libvirtErrorIs(err, golibvirt.ErrNoDomain), libvirtErrorIs(err, golibvirt.ErrOperationInvalid),
			libvirtErrorIs(err, golibvirt.ErrOperationUnsupported), libvirtErrorIs(err, golibvirt.ErrNoSupport):
		default:
			d.errs = append(d.errs, "job info: "+err.Error())
			failed = append(failed, fmt.Errorf("domain %s: %w", d.name, err))
		}
	}
	if unanswered > 0 {
		failed = append(failed, fmt.Errorf("%d domains' job info not answered in time", unanswered))
	}
	return time.Since(j.start), errors.Join(failed...)
}

// libvirtErrorIs reports whether err is libvirt's error number code.
func libvirtErrorIs(err error, code golibvirt.ErrorNumber) bool {
	var e golibvirt.Error
	return errors.As(err, &e) && e.Code == uint32(code)
}
