package runtime

import (
	"fmt"
	"net"
	goruntime "runtime"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RuntimeAPIAddr is where every fully isolated sandbox finds its Runtime
// API: loopback inside the sandbox's own network namespace.
const RuntimeAPIAddr = "127.0.0.1:9001"

// setupSandboxNetwork prepares the network namespace of process pid and
// returns the Runtime API listener created inside it. All of a sandbox's
// network setup lives here; today a sandbox gets loopback only (no route out,
// no other interface), so the only thing it can reach is its own Runtime
// API. Outbound access will be added here (a veth pair and NAT, or a
// userspace proxy) without touching the rest.
//
// The listener is made on an OS thread switched into the sandbox's namespace
// and switched back; a socket stays in the namespace it was created in, so
// the agent then serves it from any goroutine. A thread that cannot be
// switched back is never unlocked: the goroutine exits with it locked and
// the Go runtime destroys the thread, so no goroutine ever runs in a
// sandbox's namespace by accident.
func setupSandboxNetwork(pid int) (net.Listener, error) {
	nsPath := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", nsPath, err)
	}
	defer unix.Close(target)

	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			goruntime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open own netns: %w", err)}
			return
		}
		defer unix.Close(home)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			goruntime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("setns into sandbox netns: %w", err)}
			return
		}
		ln, err := loopbackListener()
		if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			if ln != nil {
				ln.Close()
			}
			ch <- result{err: fmt.Errorf("setns back to the host netns: %w", err)}
			return
		}
		goruntime.UnlockOSThread()
		ch <- result{ln: ln, err: err}
	}()
	r := <-ch
	return r.ln, r.err
}

// loopbackListener runs on a thread inside the sandbox's netns.
func loopbackListener() (net.Listener, error) {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("bring lo up: %w", err)
	}
	ln, err := net.Listen("tcp4", RuntimeAPIAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", RuntimeAPIAddr, err)
	}
	return ln, nil
}
