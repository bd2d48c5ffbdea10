package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// nsInitEnv carries the plan of a namespace init (see nsInit) from the test
// process to its re-executed copy.
const nsInitEnv = "VMHOST_TESTENV_NSINIT"

// nsPlan is what the namespace init mounts and runs.
type nsPlan struct {
	// Binds are [source, target] pairs bind-mounted in the private mount
	// namespace: the daemon sees source at target, the host never does.
	Binds [][2]string `json:"binds"`
	// Overlays are [dir, upper, work] triples: dir becomes an overlay of
	// itself whose changes land in upper, a directory of the test's.
	Overlays [][3]string `json:"overlays,omitempty"`
	// Tmpfs are directories that start empty in the namespace.
	Tmpfs []string `json:"tmpfs,omitempty"`
	// HungFUSE are directories on which a FUSE file system is mounted
	// whose daemon never answers: the init holds the /dev/fuse end and
	// never reads it, so every request below the mount point blocks in
	// the kernel, as on the mount of a dead NFS server.
	HungFUSE []string `json:"hung_fuse,omitempty"`
	// Argv is the daemon's command line, started at once and again on
	// SIGUSR1 (a restart after a crash the test caused).
	Argv []string `json:"argv"`
	// HostNetwork keeps the machine's network namespace, so a server in
	// the namespace is reached on a loopback address of FreePort.
	HostNetwork bool `json:"-"`
}

// Every test binary that imports testenv can act as the init (PID 1) of a
// private PID, mount and network namespace: the test re-executes itself
// with nsInitEnv set, and this runs before any test.
func init() {
	if plan := os.Getenv(nsInitEnv); plan != "" {
		os.Exit(nsInit(plan))
	}
}

// nsInit is PID 1 of a daemon's namespaces. Being PID 1 is the point: when
// it exits, for whatever reason, the kernel kills every process left in the
// namespace, so guests that QEMU daemonised away from libvirtd die with
// the test. It also reaps those orphans (libvirtd does not, and a zombie
// QEMU makes `virsh destroy` wait), forwards SIGTERM/SIGINT to the daemon,
// restarts the daemon on SIGUSR1 and ends everything when fd 3, the read
// end of a pipe whose write end only the test process holds, reports EOF:
// the test process is gone, even by SIGKILL.
func nsInit(planJSON string) int {
	var plan nsPlan
	if err := json.Unmarshal([]byte(planJSON), &plan); err != nil || len(plan.Argv) == 0 {
		fmt.Fprintf(os.Stderr, "nsinit: bad plan %q: %v\n", planJSON, err)
		return 2
	}
	if err := nsMounts(plan); err != nil {
		fmt.Fprintf(os.Stderr, "nsinit: %v\n", err)
		return 2
	}
	parentGone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.NewFile(3, "parent-pipe"))
		close(parentGone)
	}()

	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if len(kv) < len(nsInitEnv)+1 || kv[:len(nsInitEnv)+1] != nsInitEnv+"=" {
			env = append(env, kv)
		}
	}
	start := func() int {
		p, err := os.StartProcess(plan.Argv[0], plan.Argv, &os.ProcAttr{Env: env, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
		if err != nil {
			fmt.Fprintf(os.Stderr, "nsinit: starting %s: %v\n", plan.Argv[0], err)
			return 0
		}
		return p.Pid
	}
	daemon := start()
	stopping := false
	for {
		select {
		case <-parentGone:
			_ = syscall.Kill(-1, syscall.SIGKILL)
			return 1
		case sig := <-signals:
			switch sig {
			case syscall.SIGUSR1:
				if daemon == 0 && !stopping {
					daemon = start()
				}
			case syscall.SIGTERM, syscall.SIGINT:
				stopping = true
				if daemon == 0 {
					_ = syscall.Kill(-1, syscall.SIGKILL)
					return 0
				}
				_ = syscall.Kill(daemon, sig.(syscall.Signal))
			case syscall.SIGCHLD:
				for {
					var ws syscall.WaitStatus
					pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
					if err == syscall.EINTR {
						continue
					}
					if pid <= 0 || err != nil {
						break
					}
					if pid == daemon {
						daemon = 0
						if stopping {
							_ = syscall.Kill(-1, syscall.SIGKILL)
							return ws.ExitStatus()
						}
					}
				}
			}
		}
	}
}

// nsMounts makes the mount namespace private (nothing propagates back to
// the host), bind-mounts the plan's directories, mounts its overlays and
// tmpfs, and mounts a /proc of the new PID namespace, so that libvirtd
// reads its guests' /proc entries by the PIDs it knows them by.
func nsMounts(plan nsPlan) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	for _, b := range plan.Binds {
		if err := syscall.Mount(b[0], b[1], "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mounting %s on %s: %w", b[0], b[1], err)
		}
	}
	for _, o := range plan.Overlays {
		opts := "lowerdir=" + o[0] + ",upperdir=" + o[1] + ",workdir=" + o[2]
		if err := syscall.Mount("overlay", o[0], "overlay", 0, opts); err != nil {
			return fmt.Errorf("mounting an overlay on %s (%s): %w", o[0], opts, err)
		}
	}
	for _, dir := range plan.Tmpfs {
		if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("mounting a tmpfs on %s: %w", dir, err)
		}
	}
	for _, dir := range plan.HungFUSE {
		if err := mountHungFUSE(dir); err != nil {
			return err
		}
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	return nil
}

// mountHungFUSE mounts a FUSE file system on dir and leaves its /dev/fuse
// descriptor open, unread, for the life of the init: the kernel's
// FUSE_INIT and every request after it wait for an answer that never
// comes (requests are killable, so a SIGKILL still ends a process stuck
// in one). The descriptor is close-on-exec, so only the init holds it;
// when the init exits the connection is aborted and the mount goes with
// the namespace. The root directory is the kernel's own (rootmode), so
// dir itself can be stat'ed; any name below it hangs. allow_other lets
// other users (the exporter's service user) in: without it they get
// EACCES at once instead of hanging.
func mountHungFUSE(dir string) error {
	fd, err := syscall.Open("/dev/fuse", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/fuse: %w", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fd)
	if err := syscall.Mount("hung", dir, "fuse", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("mounting a hung FUSE file system on %s (%s): %w", dir, opts, err)
	}
	return nil // fd stays open, unread, until the init exits
}
