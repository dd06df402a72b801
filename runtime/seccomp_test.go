package runtime

import (
	"encoding/binary"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData encodes a struct seccomp_data for x/net/bpf's VM. The kernel
// loads each 32-bit word in the machine's byte order while the VM loads
// big-endian, so every word the filter can load is written big-endian at
// the offset the kernel would find it: for a 64-bit argument that is its
// low half at ioctlCmdLowWord's offset and its high half beside it.
func seccompData(auditArch, nr uint32, args ...uint64) []byte {
	b := make([]byte, seccompDataArgs+6*8)
	binary.BigEndian.PutUint32(b[seccompDataNr:], nr)
	binary.BigEndian.PutUint32(b[seccompDataArch:], auditArch)
	lowFirst := ioctlCmdLowWord() == seccompDataArgs+8
	for i, a := range args {
		lo, hi := uint32(a), uint32(a>>32)
		if !lowFirst {
			lo, hi = hi, lo
		}
		binary.BigEndian.PutUint32(b[seccompDataArgs+8*i:], lo)
		binary.BigEndian.PutUint32(b[seccompDataArgs+8*i+4:], hi)
	}
	return b
}

// TestGuardProgramComparesLowWordOfIoctlCmd runs the hand-written filter on
// the cases the kernel sees: ioctl's cmd is an unsigned int, so the high
// half of the register must not change the verdict.
func TestGuardProgramComparesLowWordOfIoctlCmd(t *testing.T) {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Skip(err)
	}
	native := uint32(info.ID)
	vm, err := bpf.NewVM(guardProgram(native))
	if err != nil {
		t.Fatal(err)
	}
	const deny, allow = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM), unix.SECCOMP_RET_ALLOW
	for _, tc := range []struct {
		name string
		data []byte
		want uint32
	}{
		{"TIOCSTI", seccompData(native, unix.SYS_IOCTL, 0, unix.TIOCSTI), deny},
		{"TIOCSTI with high bits set", seccompData(native, unix.SYS_IOCTL, 0, 1<<32|unix.TIOCSTI), deny},
		{"TIOCSTI with all high bits set", seccompData(native, unix.SYS_IOCTL, 0, 0xffffffff<<32|unix.TIOCSTI), deny},
		{"TIOCLINUX", seccompData(native, unix.SYS_IOCTL, 0, unix.TIOCLINUX), deny},
		{"TIOCLINUX with high bits set", seccompData(native, unix.SYS_IOCTL, 1, 0x8000000000000000|unix.TIOCLINUX), deny},
		{"TCGETS", seccompData(native, unix.SYS_IOCTL, 0, unix.TCGETS), allow},
		{"TIOCINQ", seccompData(native, unix.SYS_IOCTL, 0, unix.TIOCINQ), allow},
		{"TIOCSTI's number as another syscall's argument", seccompData(native, unix.SYS_READ, 0, unix.TIOCSTI), allow},
		{"read", seccompData(native, unix.SYS_READ, 0, 0), allow},
		{"foreign ABI", seccompData(native^1, unix.SYS_READ), deny},
	} {
		got, err := vm.Run(tc.data)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if uint32(got) != tc.want {
			t.Errorf("%s: filter returned %#x, want %#x", tc.name, got, tc.want)
		}
	}
}
