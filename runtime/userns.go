package runtime

import (
	"errors"
	"fmt"
	"os/exec"
	goruntime "runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Each sandbox's user namespace is owned by a host uid of its own, not by
// root. The kernel charges what a process creates against per-user counts
// (inotify instances and watches, user namespaces, ...) at its own
// namespace and again at every ancestor, where the charge goes to the uid
// that owns the namespace below. With root owning every sandbox's
// namespace, 128 inotify instances held by one function
// (fs.inotify.max_user_instances) left host root and every other tenant
// with EMFILE; with an owner per sandbox, each sandbox spends its own
// budget.
//
// Owners are host uids HostIDBase+1000 onwards (the ids sandboxes run as
// are HostIDBase+0..999), namespaceOwners of them. They are never mapped
// into a namespace and no process runs as one.
const (
	namespaceOwnerOffset = 1000
	namespaceOwners      = 1 << 16
)

// ownerIDs hands out namespace owners. It cycles through the range rather
// than reusing the lowest free id: the kernel releases a dead namespace's
// counts asynchronously, so an id is best reused late.
type ownerIDs struct {
	base uint32 // first owner uid

	mu    sync.Mutex
	next  uint32
	inUse map[uint32]bool
}

func newOwnerIDs(hostIDBase uint32) *ownerIDs {
	return &ownerIDs{base: hostIDBase + namespaceOwnerOffset, inUse: make(map[uint32]bool)}
}

// errNoNamespaceOwner: every owner id is taken, which means that many
// sandboxes exist at once.
var errNoNamespaceOwner = errors.New("every user namespace owner id is in use")

// alloc takes a free owner; its release gives it back (once, however often
// it is called).
func (o *ownerIDs) alloc() (*nsOwner, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for range namespaceOwners {
		slot := o.next
		o.next = (o.next + 1) % namespaceOwners
		if !o.inUse[slot] {
			o.inUse[slot] = true
			return &nsOwner{ids: o, slot: slot}, nil
		}
	}
	return nil, errNoNamespaceOwner
}

// nsOwner is one sandbox's namespace owner. A shell and then the sandbox
// made from it share it; whichever is torn down last has released it.
type nsOwner struct {
	ids  *ownerIDs
	slot uint32
	once sync.Once
}

func (n *nsOwner) uid() uint32 { return n.ids.base + n.slot }

// release gives the id back. Nil-safe (a sandbox without a user namespace
// has no owner).
func (n *nsOwner) release() {
	if n == nil {
		return
	}
	n.once.Do(func() {
		n.ids.mu.Lock()
		delete(n.ids.inUse, n.slot)
		n.ids.mu.Unlock()
	})
}

// startAsOwner starts cmd, whose clone creates a user namespace, so that
// the namespace is owned by uid: the kernel makes the caller's effective
// uid the owner. The clone is done from an OS thread whose effective uid
// alone is switched to uid, with its capabilities raised again (the real
// and saved uids stay 0, so the permitted set survives the switch), so the
// thread can still write the new namespace's id maps; then it switches back.
// Only that thread's credentials change (raw syscalls: Go's Setresuid
// changes every thread), and Go creates no thread from a locked one, so no
// other goroutine ever runs with them. A thread that cannot switch back
// stays locked and dies with its goroutine; the child it made has a
// parent-death signal and dies with it.
func startAsOwner(cmd *exec.Cmd, uid uint32) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		if err := setThreadEUID(uid); err != nil {
			goruntime.UnlockOSThread()
			errc <- fmt.Errorf("become namespace owner %d: %w", uid, err)
			return
		}
		err := raiseEffectiveCaps()
		if err == nil {
			err = cmd.Start()
		}
		if errBack := setThreadEUID(0); errBack != nil {
			// Leave the thread locked: it is destroyed with this goroutine.
			if err == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			errc <- fmt.Errorf("switch back from namespace owner %d: %w", uid, errBack)
			return
		}
		goruntime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// setThreadEUID sets the calling thread's effective (and with it file
// system) uid, leaving the real and saved uids alone. Returning to 0 copies
// the permitted capabilities back into the effective set.
func setThreadEUID(uid uint32) error {
	keep := ^uintptr(0) // -1: unchanged
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, keep, uintptr(uid), keep); errno != 0 {
		return errno
	}
	return nil
}

// raiseEffectiveCaps makes the calling thread's effective capabilities its
// permitted ones (leaving uid 0 emptied the effective set).
func raiseEffectiveCaps() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for i := range data {
		data[i].Effective = data[i].Permitted
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
