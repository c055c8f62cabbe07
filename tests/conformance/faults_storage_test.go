//go:build conformance

package conformance

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/tests/internal/harness"
)

// motoScript is scripts/start-emulators.sh's moto server: one lock around
// the WSGI app makes each request atomic (S3's conditional writes).
const motoScript = `
import sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))
run_simple("127.0.0.1", int(sys.argv[1]), serialized, threaded=True, request_handler=MotoRequestHandler)
`

// startMoto starts a moto S3 server of the test's own on a free port, from
// the venv scripts/start-emulators.sh installs (make test runs it first in
// .ci/run), and stops it when the test ends. It returns the endpoint.
func startMoto(t *testing.T) string {
	t.Helper()
	py := filepath.Join(repoRoot(t), ".tools", "moto-venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		requireIntegration(t, "no moto at "+py+" (scripts/start-emulators.sh installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	logf, err := os.Create(filepath.Join(t.TempDir(), "moto.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", motoScript, fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
		logf.Close()
	})
	ep := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := http.Get(ep + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto did not answer on %s within 60 s: %v\n%s", ep, err, harness.TailFile(logf.Name(), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return ep
}

// createBucket creates a bucket on moto (which checks no signature).
func createBucket(t *testing.T, endpoint, bucket string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, endpoint+"/"+bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("creating bucket %s: %s %s", bucket, resp.Status, body)
	}
}

// tcpProxy forwards a local port to a target; Stop closes the listener and
// cuts every connection (clients meet refused connections, as with a
// stopped server), Start listens again on the same port. The target keeps
// its data: this is how the test stops an in-memory emulator "for 30 s".
type tcpProxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]struct{}
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Stop)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *tcpProxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// Stop refuses new connections and cuts the open ones.
func (p *tcpProxy) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Start listens again on the proxy's address.
func (p *tcpProxy) Start() error {
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(2 * time.Second); ; {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("listening on %s again: %w", p.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.serve(ln)
	return nil
}

// TestFaultHoldObjectStorageStopped: the worker's table is on an S3
// emulator (moto, an instance of this test's own, behind a TCP proxy); the
// storage stops for 30 s under load (connections refused, open ones cut)
// and comes back with its data. The worker's Delta stage holds and resumes;
// every event to track is in the table exactly once.
func TestFaultHoldObjectStorageStopped(t *testing.T) {
	t.Parallel()
	began := time.Now()
	seed := faultSeed(t, 14)
	moto := startMoto(t)
	proxy := newTCPProxy(t, moto[len("http://"):])
	bucket := "claimx-faults"
	createBucket(t, moto, bucket)
	e := holdEnv(t, "hold-s3", harness.Options{S3: &harness.S3Table{
		Endpoint: "http://" + proxy.addr, Bucket: bucket, Prefix: fmt.Sprintf("tables/%d/itel_cabinet_task_tracking", time.Now().UnixNano()),
	}})
	t.Logf("table %s on moto %s through proxy %s", e.TableURI, moto, proxy.addr)
	events, x := generate(t, e, seed, 800)
	trigger, worker := e.TriggerProc(), e.WorkerProc()
	trigger.Start()
	worker.Start()
	pub := e.Publish(events, 20, 10) // 40 s
	waitUntil(e, "30 rows before storage stops", 60*time.Second, successAtLeast(e, 30))
	rowsBefore, _ := e.TopicCount(t.Context(), e.Names.Success)
	proxy.Stop()
	stoppedAt := time.Since(began)
	keepAlive(e, 30*time.Second)
	scrapeAll(t.Context(), trigger, worker)
	rowsDuring, _ := e.TopicCount(t.Context(), e.Names.Success)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	var recs recoveries
	recs.start(e, "the storage back")
	t.Logf("storage stopped at %s for 30 s with %d rows; %d success messages when it came back; %d of %d events published",
		stoppedAt.Round(time.Millisecond), rowsBefore, rowsDuring, pub.Sent(), len(events))
	o, drained := settle(e, x, pub, trigger, worker)
	if !loggedHold(worker, "Delta storage")() {
		t.Errorf("the worker logged no Delta storage hold in 30 s without storage")
	}
	_, recText := recs.check(t, 45*time.Second)
	figures(t, e, x, o, recText, trigger, worker)
	t.Logf("timing: drain %s, total %s", drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
