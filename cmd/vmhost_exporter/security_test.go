package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmhost-exporter/vmhost_exporter/internal/testenv"
)

// selfSigned writes a certificate for the loopback IP of testenv.FreePort
// and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vmhost_exporter test"},
		IPAddresses:  []net.IP{net.ParseIP(testenv.LoopbackIP())},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSFromWebConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	cfg := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(cfg, []byte("tls_server_config:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreePort(t)
	testenv.Start(t, testenv.ExporterBinary(t), "--web.listen-address="+addr, "--web.config.file="+cfg,
		"--no-collector.libvirt", "--no-collector.backup")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	var resp *http.Response
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err = client.Get("https://" + addr + "/metrics")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "node_memory_MemTotal_bytes") {
		t.Errorf("HTTPS scrape: %d", resp.StatusCode)
	}
	if resp.TLS == nil {
		t.Error("the answer did not come over TLS")
	}
	// Plain HTTP to the TLS port gets no metrics.
	plain, err := http.Get("http://" + addr + "/metrics")
	if err == nil {
		body, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		if strings.Contains(string(body), "node_memory") {
			t.Error("metrics served over plain HTTP on the TLS port")
		}
	}
}

// bigNode writes a test-driver node with n running domains.
func bigNode(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("<node>\n")
	for i := range n {
		fmt.Fprintf(&b, `<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>vm%05d</name><uuid>30000000-0000-4000-8000-%012d</uuid><memory>1048576</memory><vcpu>2</vcpu><os><type>hvm</type></os><test:runstate>1</test:runstate></domain>`+"\n", i, i)
	}
	b.WriteString("</node>\n")
	p := filepath.Join(testenv.SharedTempDir(t), "node.xml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	return testenv.ProcStatusKiB(t, pid, "VmRSS")
}

// TestScrapeFloodIsBounded: 200 parallel scrapes of an exporter watching
// 500 domains share their libvirt queries (far fewer RPCs than 200 scrapes
// would make one by one), are capped by --web.max-requests, and leave the
// exporter's memory bounded.
func TestScrapeFloodIsBounded(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	node := bigNode(t, 500)
	e := testenv.StartExporter(t, "--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(node), "--web.max-requests=40")
	mf := testenv.Scrape(t, e.URL+"/metrics") // warm the caches
	before, _ := testenv.Value(mf, "libvirt_rpc_calls_total", nil)

	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	client := &http.Client{Timeout: 60 * time.Second}
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(e.URL + "/metrics")
			code := 0
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[0] > 0 {
		t.Errorf("%d scrapes failed outright; codes %v", codes[0], codes)
	}
	if codes[http.StatusOK] == 0 {
		t.Fatalf("no scrape succeeded: %v", codes)
	}
	mf = testenv.Scrape(t, e.URL+"/metrics")
	after, _ := testenv.Value(mf, "libvirt_rpc_calls_total", nil)
	// A warm scrape alone costs 3 RPCs; scrapes that overlap share them.
	served := float64(codes[http.StatusOK])
	if perScrape := (after - before) / (served + 1); perScrape >= 3 {
		t.Errorf("%v RPCs for %v scrapes: concurrent scrapes did not share libvirt queries", after-before, served+1)
	}
	if rss := rssKiB(t, e.Cmd.Process.Pid); rss > 100*1024 {
		t.Errorf("exporter RSS after the flood: %d MiB", rss/1024)
	}
	t.Logf("codes %v, %v RPCs, RSS %d MiB", codes, after-before, rssKiB(t, e.Cmd.Process.Pid)/1024)
}

// TestLeastPrivilege: as user nobody, with only libvirtd's read-only socket
// reachable, the exporter reads every domain.
func TestLeastPrivilege(t *testing.T) {
	l := testenv.StartLibvirtd(t)
	if err := os.Chmod(l.SockRW, 0o700); err != nil { // the read-write socket is out of reach
		t.Fatal(err)
	}
	node, _ := filepath.Abs("../../collector/libvirt/testdata/node.xml")
	shared := filepath.Join(testenv.SharedTempDir(t), "node.xml")
	data, err := os.ReadFile(node)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shared, data, 0o644); err != nil {
		t.Fatal(err)
	}
	e := testenv.StartExporterAs(t, testenv.Nobody, "--libvirt.socket="+l.SockRO, "--libvirt.uri="+testenv.TestURI(shared))
	mf := testenv.Scrape(t, e.URL+"/metrics")
	if v, _ := testenv.Value(mf, "libvirt_up", nil); v != 1 {
		t.Errorf("libvirt_up as nobody = %v, want 1\n%s", v, e.Output())
	}
	if v, _ := testenv.Value(mf, "libvirt_domains", nil); v != 6 {
		t.Errorf("libvirt_domains as nobody = %v, want 6", v)
	}
	if strings.Contains(e.Output(), "running as root") {
		t.Error("the exporter thinks it runs as root")
	}
}

// TestSlowClientIsCut: a client that opens a connection and never finishes
// its request headers is disconnected (ReadHeaderTimeout, 10 s) instead of
// holding a connection forever.
func TestSlowClientIsCut(t *testing.T) {
	e := testenv.StartExporter(t, "--no-collector.libvirt", "--no-collector.backup")
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = io.ReadAll(conn)
	took := time.Since(start)
	if err != nil && strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the server kept the half-sent request open for %s", took)
	}
	if took < 5*time.Second || took > 20*time.Second {
		t.Errorf("connection closed after %s, want about 10 s", took)
	}
}

// TestClientsThatNeverReadDoNotStarveScrapes: 45 clients send a scrape
// request and never read the answer. The page is 4 MiB (a textfile of
// 40,000 series stands in for a big host's VM series), more than the
// kernel's socket buffers take (about 3 MiB on loopback), so each handler
// blocks in its write and holds its --web.max-requests slot: scrapes get
// 503, and still do long after the handlers' own work is done. The write
// timeout then cuts those clients off, and Prometheus' own scrape succeeds
// again while they still hold their connections open.
func TestClientsThatNeverReadDoNotStarveScrapes(t *testing.T) {
	textfiles := testenv.SharedTempDir(t)
	var page strings.Builder
	page.WriteString("# HELP site_inventory_item Stand-in for a big host's series.\n# TYPE site_inventory_item gauge\n")
	for i := range 40000 {
		fmt.Fprintf(&page, "site_inventory_item{item=\"%06d\",padding=\"%s\"} 1\n", i, strings.Repeat("x", 64))
	}
	if err := os.WriteFile(filepath.Join(textfiles, "big.prom"), []byte(page.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	const writeTimeout = 30 * time.Second
	e := testenv.StartExporter(t, "--no-collector.libvirt", "--no-collector.backup", "--collector.textfile.directory="+textfiles,
		"--web.max-requests=40", "--web.write-timeout="+writeTimeout.String())
	addr := strings.TrimPrefix(e.URL, "http://")
	prom := testenv.StartPrometheus(t, `global:
  scrape_interval: 5s
  scrape_timeout: 5s
scrape_configs:
  - job_name: vmhost
    static_configs:
      - targets: ['`+addr+`']
`)
	upAfter := func(since time.Time) func() (bool, string) {
		return func() (bool, string) {
			r, err := prom.Query(t.Context(), `up{job="vmhost"}`)
			if err != nil || len(r.Data.Result) != 1 {
				return false, fmt.Sprintf("%v %+v", err, r)
			}
			ts, _ := r.Data.Result[0].Value[0].(float64)
			return r.Data.Result[0].Value[1] == "1" && ts > float64(since.UnixMilli())/1000, fmt.Sprintf("%v", r.Data.Result[0].Value)
		}
	}
	testenv.Eventually(t, time.Minute, "Prometheus scrapes the exporter", upAfter(time.Now()))

	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	flood := time.Now()
	for i := range 45 {
		conn, err := dialer.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.Write([]byte("GET /metrics HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	refused := func() (bool, string) {
		resp, err := http.Get(e.URL + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable, fmt.Sprintf("status %d, %d bytes", resp.StatusCode, n)
	}
	// The scenario is real only if the slots are held by blocked writes:
	// still refused two thirds into the write timeout, long after 45
	// renderings of the page are done.
	time.Sleep(time.Until(flood.Add(writeTimeout * 2 / 3)))
	if ok, saw := refused(); !ok {
		t.Fatalf("%s after the flood, a scrape was not refused (%s): the clients that do not read hold no slots, so this test proves nothing", time.Since(flood), saw)
	}
	// Each of Prometheus' scrapes renders 4 MiB: on a loaded 2-core machine
	// that takes seconds, hence the generous deadline.
	testenv.Eventually(t, writeTimeout/3+90*time.Second, "Prometheus scrapes again", upAfter(time.Now()))
}
