package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The sandbox init is this same binary, re-executed by the agent inside
// fresh namespaces with initEnvVar set. It talks to the agent over a
// SOCK_SEQPACKET control socket (fd initCtrlFD) in two steps:
//
//  1. shell: it receives a rootConfig, builds the private root (everything
//     that does not depend on the function), pivots into it and answers
//     "ready". Shells are made ahead of time, off the cold-start path.
//  2. launch: it receives an initConfig plus the detached mount trees of
//     the code, the runtime bootstraps and the layers, attaches them, mounts
//     /tmp, drops every privilege, installs the seccomp filter and execs the
//     bootstrap, which then is the sandbox's pid 1. The control socket
//     closes on exec (the agent reads EOF); on failure the init writes the
//     error text to it and exits.
const (
	initEnvVar   = "_STOKE_SANDBOX_INIT"
	initEnvValue = "v1"
	initCtrlFD   = 3
)

// Ids inside the sandbox, as on Lambda (sbx_user1051).
const (
	sandboxUID = 993
	sandboxGID = 990
)

// MaybeRunSandboxInit must be the first statement of main() in every binary
// that creates sandboxes (cmd/stoke, and TestMain of test packages that start
// a Pool with full isolation). In a normal run it marks every descriptor the
// process inherited above stderr close-on-exec and returns: whatever the
// agent was started with (a shell's `7</`, a leaked pipe) must not reach
// the processes it starts. In a process the pool started as a sandbox init
// it never returns.
func MaybeRunSandboxInit() {
	if os.Getenv(initEnvVar) != initEnvValue {
		// An error leaves the descriptors as they were; the sandbox init
		// does the same again before exec and fails the sandbox if it
		// cannot, so nothing is lost by going on.
		_ = closeOnExecFrom(3)
		return
	}
	goruntime.LockOSThread()
	err := sandboxInit()
	msg := initPlatformFault + err.Error()
	if errors.As(err, new(functionFault)) {
		msg = initFunctionFault + err.Error()
	}
	_, _ = unix.Write(initCtrlFD, []byte(msg))
	os.Exit(127)
}

// The init's last message, when it cannot exec the bootstrap, starts with
// one of these: the failure is the function's (its bootstrap is missing or
// cannot be executed; Init fails with Runtime.InvalidEntrypoint) or the
// platform's (ErrSandboxStart).
const (
	initFunctionFault = "function: "
	initPlatformFault = "sandbox init: "
)

// functionFault marks an init error that is the function's fault.
type functionFault struct{ error }

// rootConfig is the shell step's message.
type rootConfig struct {
	System   []systemEntry
	EtcFiles map[string]string // generated /etc files: name -> content
}

// initConfig is the launch step's message. Paths are inside the sandbox.
type initConfig struct {
	Hostname string
	// Candidates are executable paths tried in order; the first that
	// exists becomes argv[0] (provided runtimes look for
	// /var/task/bootstrap, then /opt/bootstrap).
	Candidates []string
	Args       []string // argv[1:]
	Env        []string
	TmpMB      int
	UserNS     bool // ids are mapped; we are root in our own user namespace
	UID, GID   int  // ids the bootstrap runs as (inside the namespace)
	// Layout of the file descriptors sent alongside: code, runtime assets,
	// then NumLayers layers.
	NumLayers int
}

// systemEntry is one host path made visible read-only in the sandbox.
type systemEntry struct {
	Path    string // same path on the host and in the sandbox
	Symlink string // non-empty: recreate as a symlink with this target
	IsDir   bool
}

func sandboxInit() error {
	// The control socket must not outlive exec: its closing is how the
	// agent learns the bootstrap is running.
	unix.CloseOnExec(initCtrlFD)
	var rc rootConfig
	if _, err := readMessage(&rc); err != nil {
		return err
	}
	if err := buildRoot(rc); err != nil {
		return err
	}
	filters, err := assembleSeccomp()
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	if _, err := unix.Write(initCtrlFD, []byte(shellReady)); err != nil {
		return err
	}
	var cfg initConfig
	fds, err := readMessage(&cfg)
	if err != nil {
		return err
	}
	if len(fds) != 2+cfg.NumLayers {
		return fmt.Errorf("got %d descriptors, want %d", len(fds), 2+cfg.NumLayers)
	}
	if err := mountFunction(cfg, fds); err != nil {
		return err
	}
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	argv0 := firstFile(cfg.Candidates)
	if argv0 == "" {
		return functionFault{fmt.Errorf("no bootstrap found (looked for %s)", strings.Join(cfg.Candidates, ", "))}
	}
	if err := dropPrivileges(cfg); err != nil {
		return err
	}
	if err := os.Chdir("/var/task"); err != nil {
		return err
	}
	// Only stdin, stdout and stderr may reach the function: a descriptor the
	// agent inherited without close-on-exec would otherwise be open in every
	// sandbox, and a directory of the host's among them is a way out
	// through /proc/self/fd (CVE-2024-21626). Close-on-exec rather than
	// close: the control socket must stay open until the exec succeeds.
	if err := closeOnExecFrom(3); err != nil {
		return fmt.Errorf("close inherited descriptors: %w", err)
	}
	if err := filters.install(); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	err = syscall.Exec(argv0, append([]string{argv0}, cfg.Args...), cfg.Env)
	return functionFault{fmt.Errorf("exec %s: %w", argv0, err)}
}

// closeRangeCloexec is CLOSE_RANGE_CLOEXEC (linux/close_range.h), which
// x/sys/unix does not define.
const closeRangeCloexec = 1 << 2

// closeOnExecFrom marks every open descriptor numbered first or above
// close-on-exec: with one close_range(2) (Linux 5.11), or descriptor by
// descriptor from /proc/self/fd on older kernels.
func closeOnExecFrom(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), closeRangeCloexec)
	if err == nil || !(errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL)) {
		return err
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		// One entry is ReadDir's own descriptor, already closed: EBADF.
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
				return err
			}
		}
	}
	return nil
}

// firstFile returns the first of paths that exists and is not a directory,
// or "" (how a bootstrap is chosen among its candidates, with and without
// isolation).
func firstFile(paths []string) string {
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// shellReady is the init's answer once its root is built.
const shellReady = "ready"

// readMessage receives one control message into v, with any descriptors.
func readMessage(v any) ([]int, error) {
	buf := make([]byte, 256<<10)
	oob := make([]byte, unix.CmsgSpace(64*4))
	n, oobn, _, _, err := unix.Recvmsg(initCtrlFD, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("read control message: %w", err)
	}
	if n == 0 {
		return nil, errors.New("agent closed the control socket")
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		f, err := unix.ParseUnixRights(&m)
		if err != nil {
			return nil, err
		}
		fds = append(fds, f...)
	}
	if err := json.Unmarshal(buf[:n], v); err != nil {
		return fds, fmt.Errorf("decode control message: %w", err)
	}
	return fds, nil
}

// newRootMount is where the init builds the root before pivoting into it. It
// is a directory every host has and every uid can reach; the tmpfs mounted
// on it exists only in the sandbox's private mount namespace.
const newRootMount = "/tmp"

// buildRoot assembles the function-independent part of the sandbox's file
// system view and pivots into it (mountFunction adds the rest at launch):
//
//	/                 tmpfs, read-only once built
//	/usr /lib* /bin…  host directories, read-only (or their symlinks)
//	/etc              generated passwd/group/hosts + a few host files, ro
//	/var/task         (launch) the function's code, ro
//	/var/runtime      (launch) Stoke's bootstraps, ro
//	/opt              (launch) layers (one: bind; several: overlay), ro
//	/tmp              (launch) tmpfs of EphemeralStorageMB
//	/proc             a fresh procfs of the sandbox's pid namespace
//	/dev              null zero full random urandom, fd and std* links (no
//	                  tty: a sandbox has no terminal)
//
// Nothing is mounted in the host's namespace, so nothing needs unmounting:
// the mounts die with the sandbox's mount namespace.
func buildRoot(cfg rootConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	root := newRootMount
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=4m,mode=0755"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	at := func(p string) string { return filepath.Join(root, p) }

	for _, e := range cfg.System {
		if e.Symlink != "" {
			if err := mkParent(at(e.Path)); err != nil {
				return err
			}
			if err := os.Symlink(e.Symlink, at(e.Path)); err != nil {
				return err
			}
			continue
		}
		if err := bindReadOnly(e.Path, at(e.Path), e.IsDir, unix.MS_NOSUID|unix.MS_NODEV); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(at("etc"), 0o755); err != nil {
		return err
	}
	for name, content := range cfg.EtcFiles {
		if err := os.WriteFile(at("etc/"+name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	for _, dir := range []string{"var/task", "var/runtime", "opt", "tmp"} {
		if err := os.MkdirAll(at(dir), 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(at("proc"), 0o555); err != nil {
		return err
	}
	if err := unix.Mount("proc", at("proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := buildDev(at("dev")); err != nil {
		return fmt.Errorf("/dev: %w", err)
	}
	if err := os.MkdirAll(at("home/sbx_user1051"), 0o755); err != nil {
		return err
	}
	if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remount root read-only: %w", err)
	}
	return pivotInto(root)
}

// mountFunction attaches the function's trees and its /tmp to the root
// built by buildRoot (read-only by then: mounting on its directories does
// not write to it).
func mountFunction(cfg initConfig, fds []int) error {
	if err := attachTree(fds[0], "/var/task"); err != nil {
		return fmt.Errorf("code: %w", err)
	}
	if err := attachTree(fds[1], "/var/runtime"); err != nil {
		return fmt.Errorf("runtime: %w", err)
	}
	tmpOpts := fmt.Sprintf("size=%dm,mode=1777,uid=0,gid=0", cfg.TmpMB)
	if err := unix.Mount("tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, tmpOpts); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	if err := mountLayers("/opt", fds[2:]); err != nil {
		return fmt.Errorf("layers: %w", err)
	}
	return nil
}

func mkParent(p string) error { return os.MkdirAll(filepath.Dir(p), 0o755) }

// bindReadOnly bind-mounts src on dst and makes the bind read-only. In a user
// namespace the flags the source mount carries (nosuid, nodev, noexec,
// atime) are locked and must be repeated on the remount, so they are read
// from the source first.
func bindReadOnly(src, dst string, isDir bool, extra uintptr) error {
	if isDir {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
	} else {
		if err := mkParent(dst); err != nil {
			return err
		}
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dst, &st); err != nil {
		return err
	}
	flags := unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | extra | lockedMountFlags(st.Flags)
	if err := unix.Mount("", dst, "", uintptr(flags), ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", dst, err)
	}
	return nil
}

func lockedMountFlags(stFlags int64) uintptr {
	var f uintptr
	for _, m := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if stFlags&m.st != 0 {
			f |= m.ms
		}
	}
	return f
}

// attachTree attaches a detached mount tree the agent made (open_tree
// with OPEN_TREE_CLONE, already read-only, nosuid, nodev) at dst. A plain
// bind mount cannot be used: its source would live in the agent's mount
// namespace, and bind mounts only take sources from the caller's own.
func attachTree(fd int, dst string) error {
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", dst, err)
	}
	return nil
}

// mountLayers merges layers at /opt: later layers win, as on Lambda. With
// several layers each tree is attached under a scratch directory in the
// fresh /tmp, stacked with a read-only overlay (which keeps its own
// references), and detached again.
func mountLayers(opt string, fds []int) error {
	switch len(fds) {
	case 0:
		return nil
	case 1:
		return attachTree(fds[0], opt)
	}
	scratch := "/tmp/.stoke-layers"
	lower := make([]string, len(fds))
	for i, fd := range fds {
		dir := filepath.Join(scratch, strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := attachTree(fd, dir); err != nil {
			return err
		}
		lower[len(fds)-1-i] = dir // overlay's leftmost lowerdir is on top
	}
	if err := unix.Mount("overlay", opt, "overlay", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV,
		"lowerdir="+strings.Join(lower, ":")); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	for i := range fds {
		dir := filepath.Join(scratch, strconv.Itoa(i))
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return err
		}
		_ = os.Remove(dir)
	}
	return os.Remove(scratch)
}

func buildDev(dev string) error {
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,mode=0755"); err != nil {
		return err
	}
	// No tty: /dev/tty is whatever terminal controls the opener, and a
	// function must never reach one (it could type into it with TIOCSTI).
	for _, name := range []string{"null", "zero", "full", "random", "urandom"} {
		if _, err := os.Stat("/dev/" + name); err != nil {
			continue
		}
		if err := bindReadOnlyDevice("/dev/"+name, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	for link, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
	} {
		if err := os.Symlink(target, filepath.Join(dev, link)); err != nil {
			return err
		}
	}
	return unix.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, "")
}

// bindReadOnlyDevice binds a host device node. Writes to /dev/null still
// work on a read-only bind: they go to the device, not the file system.
func bindReadOnlyDevice(src, dst string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dst, &st); err != nil {
		return err
	}
	flags := unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOSUID | unix.MS_NOEXEC | lockedMountFlags(st.Flags)
	return unix.Mount("", dst, "", uintptr(flags), "")
}

// pivotInto makes dir the root and detaches the old root entirely.
func pivotInto(dir string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldRoot)
	if err := unix.Chdir(dir); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// dropPrivileges leaves the init with nothing: limits set, bounding and
// ambient capability sets emptied, ids switched to the sandbox user (which
// clears the permitted and effective sets), the parent-death signal re-armed
// (a credential change clears it). No_new_privs comes with the seccomp
// filter. Per-thread state is changed on this locked thread, the one that
// execs; Go applies the id changes to all threads.
func dropPrivileges(cfg initConfig) error {
	for _, rl := range []struct {
		res int
		val uint64
	}{{unix.RLIMIT_NOFILE, NofileLimit}, {unix.RLIMIT_CORE, 0}} {
		// syscall.Setrlimit (not x/sys) so Go does not restore its saved
		// NOFILE limit at exec.
		if err := syscall.Setrlimit(rl.res, &syscall.Rlimit{Cur: rl.val, Max: rl.val}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", rl.res, err)
		}
	}
	last, err := capLastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop bounding cap %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient caps: %w", err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(cfg.GID, cfg.GID, cfg.GID); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := syscall.Setresuid(cfg.UID, cfg.UID, cfg.UID); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return err
	}
	return nil
}

func capLastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 63, nil //nolint:nilerr // unknown: try them all
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
