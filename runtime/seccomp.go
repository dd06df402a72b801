package runtime

import (
	"fmt"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// deniedSyscalls fail with EPERM inside a sandbox. The list covers what lets
// a process reach past its namespaces or into the kernel: mounting, new or
// foreign namespaces, tracing and reading other processes' memory, the
// kernel keyring, BPF and perf, userfaultfd and io_uring (kernel-exploit
// primitives; io_uring's requests also bypass this filter, which sees only
// the syscall that submits them), opening files by handle (escapes a bind
// mount), kernel modules, kexec, reboot, and a few more that no function
// needs (swap, clock, acct, quotas, syslog, port I/O).
var deniedSyscalls = []string{
	"mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
	"fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"unshare", "setns",
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	"keyctl", "add_key", "request_key",
	"bpf", "perf_event_open", "userfaultfd",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"open_by_handle_at", "name_to_handle_at",
	"init_module", "finit_module", "delete_module",
	"kexec_load", "kexec_file_load", "reboot",
	"swapon", "swapoff", "acct", "quotactl", "settimeofday", "clock_settime",
	"clock_adjtime", "adjtimex", "syslog", "iopl", "ioperm",
	"vhangup",
}

// cloneNamespaceFlags are the clone(2) flags that create namespaces.
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP |
	unix.CLONE_NEWTIME

// sandboxSeccompPolicy is the deny-list filter installed last before the
// bootstrap is executed. go-seccomp-bpf expresses argument conditions, which
// covers clone with namespace flags (clone's flags are an unsigned long, so
// comparing all 64 bits is right). It does not cover ioctl: the library
// compares all 64 bits of an argument, while the kernel reads ioctl's cmd
// as a 32-bit int, so ioctl(fd, 0x100005412) would pass a rule for TIOCSTI
// (0x5412) and still be TIOCSTI; guardProgram holds the ioctl rules.
// clone3 passes its flags in memory that a filter cannot read, so clone3
// answers ENOSYS and libc falls back to clone, which the filter can inspect.
func sandboxSeccompPolicy() seccomp.Policy {
	var cloneConds []seccomp.NameWithConditions
	for bit := uint64(1); bit != 0 && bit <= 1<<31; bit <<= 1 {
		if cloneNamespaceFlags&bit != 0 {
			cloneConds = append(cloneConds, seccomp.NameWithConditions{
				Name:       "clone",
				Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: bit}},
			})
		}
	}
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionErrno, Names: deniedSyscalls},
			{Action: seccomp.ActionErrno, NamesWithCondtions: cloneConds},
			{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS), Names: []string{"clone3"}},
		},
	}
}

// seccompPrograms are the two filters, assembled ahead of time (in the
// shell step) so that launch only loads them.
type seccompPrograms struct {
	guard, denyList []unix.SockFilter
}

// deniedIoctls are the ioctl commands refused in a sandbox: TIOCSTI pushes
// bytes into a terminal's input queue and TIOCLINUX's selection paste does
// the same on a virtual console; either would let a function type commands
// into a terminal of the host. The sandbox has no terminal (its init starts
// a new session and its /dev has no tty), so this is the second wall.
var deniedIoctls = []uint32{unix.TIOCSTI, unix.TIOCLINUX}

// Offsets into struct seccomp_data.
const (
	seccompDataNr   = 0
	seccompDataArch = 4
	seccompDataArgs = 16
)

// guardProgram is the first filter, written by hand for what go-seccomp-bpf
// cannot express:
//
//   - It refuses every syscall made through a foreign ABI (i386 int 0x80;
//     x32 is refused by the deny-list program itself): go-seccomp-bpf's
//     policy lets a foreign-arch syscall fall through to its default action,
//     which is allow in a deny-list, so without this the i386 numbers of
//     mount, ptrace and the rest would bypass the list.
//   - It refuses the deniedIoctls comparing only the low 32 bits of cmd,
//     which is all the kernel reads (ioctl's cmd is an unsigned int): a
//     64-bit compare lets 0x100005412 through as TIOCSTI.
func guardProgram(auditArch uint32) []bpf.Instruction {
	deny := bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)}
	allow := bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: seccompDataArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: auditArch, SkipTrue: 1},
		deny,
		bpf.LoadAbsolute{Off: seccompDataNr, Size: 4},
		// Not ioctl: skip the load and the comparisons, to the allow.
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_IOCTL, SkipFalse: uint8(len(deniedIoctls) + 1)},
		bpf.LoadAbsolute{Off: ioctlCmdLowWord(), Size: 4},
	}
	for i, cmd := range deniedIoctls {
		// Jump to the deny that follows the last comparison.
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: cmd, SkipTrue: uint8(len(deniedIoctls) - i)})
	}
	return append(prog, allow, deny)
}

// ioctlCmdLowWord is the offset of the low 32 bits of ioctl's second
// argument in struct seccomp_data: args are 64-bit in the machine's byte
// order.
func ioctlCmdLowWord() uint32 {
	off := uint32(seccompDataArgs + 8*1)
	probe := uint64(1)
	if *(*byte)(unsafe.Pointer(&probe)) == 0 { // big-endian
		off += 4
	}
	return off
}

// assembleSeccomp builds the guard filter and the deny-list.
func assembleSeccomp() (seccompPrograms, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return seccompPrograms{}, err
	}
	policy := sandboxSeccompPolicy()
	denyProg, err := policy.Assemble()
	if err != nil {
		return seccompPrograms{}, err
	}
	var out seccompPrograms
	if out.guard, err = toSockFilter(guardProgram(uint32(info.ID))); err != nil {
		return out, err
	}
	if out.denyList, err = toSockFilter(denyProg); err != nil {
		return out, err
	}
	return out, nil
}

func toSockFilter(prog []bpf.Instruction) ([]unix.SockFilter, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, err
	}
	out := make([]unix.SockFilter, len(raw))
	for i, in := range raw {
		out[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return out, nil
}

// install sets no_new_privs and loads both filters on the calling thread
// (the one that will execve; no TSYNC needed).
func (sp seccompPrograms) install() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	for _, f := range [][]unix.SockFilter{sp.guard, sp.denyList} {
		fprog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
		if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
			return errno
		}
	}
	return nil
}
