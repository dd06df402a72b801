// Command gofn is the Go function the runtime tests deploy as a
// provided.al2023 bootstrap. It uses the real aws-lambda-go client; the
// event's "op" selects what it does, including probes of the sandbox.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"golang.org/x/sys/unix"
)

type event struct {
	Op    string   `json:"op"`
	Value string   `json:"value"`
	N     int      `json:"n"`
	Args  []string `json:"args"`
}

var counter int // module state kept across warm invocations

var heldInotify []int // inotify instances the "inotify" op keeps open

var spins int // what the "spin" op's goroutine counts (racy on purpose: never read)

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var ev event
	_ = json.Unmarshal(raw, &ev)
	counter++
	switch ev.Op {
	case "", "echo":
		return raw, nil
	case "counter":
		return counter, nil
	case "error":
		return nil, errors.New("boom: " + ev.Value)
	case "panic":
		panic("kaboom")
	case "sleep":
		time.Sleep(time.Duration(ev.N) * time.Millisecond)
		return "slept", nil
	case "print":
		for i := 0; i < ev.N; i++ {
			fmt.Println(ev.Value)
		}
		return "printed", nil
	case "flood":
		// ev.N megabytes of output on stdout.
		line := strings.Repeat("x", 1023) + "\n"
		for i := 0; i < ev.N*1024; i++ {
			os.Stdout.WriteString(line)
		}
		return "flooded", nil
	case "big":
		return strings.Repeat("a", ev.N), nil
	case "exit":
		os.Exit(ev.N)
	case "context":
		lc, _ := lambdacontext.FromContext(ctx)
		dl, _ := ctx.Deadline()
		return map[string]any{
			"requestId": lc.AwsRequestID, "arn": lc.InvokedFunctionArn,
			"identity": lc.Identity, "clientContext": lc.ClientContext,
			"functionName": lambdacontext.FunctionName, "version": lambdacontext.FunctionVersion,
			"memory": lambdacontext.MemoryLimitInMB, "logGroup": lambdacontext.LogGroupName,
			"logStream": lambdacontext.LogStreamName, "deadlineInFuture": time.Until(dl) > 0,
			"traceId": os.Getenv("_X_AMZN_TRACE_ID"),
		}, nil
	case "env":
		return os.Environ(), nil
	case "alloc":
		// Touch ev.N megabytes.
		var keep [][]byte
		for i := 0; i < ev.N; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		return len(keep), nil
	case "read":
		b, err := os.ReadFile(ev.Value)
		if err != nil {
			return "error: " + err.Error(), nil
		}
		return string(b), nil
	case "readdir":
		ents, err := os.ReadDir(ev.Value)
		if err != nil {
			return "error: " + err.Error(), nil
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names, nil
	case "connect":
		c, err := net.DialTimeout("tcp", ev.Value, time.Second)
		if err != nil {
			return "error: " + err.Error(), nil
		}
		c.Close()
		return "connected", nil
	case "filltmp":
		f, err := os.Create("/tmp/fill")
		if err != nil {
			return "error: " + err.Error(), nil
		}
		defer os.Remove("/tmp/fill")
		defer f.Close()
		buf := make([]byte, 1<<20)
		for i := 0; i < ev.N; i++ {
			if _, err := f.Write(buf); err != nil {
				return fmt.Sprintf("error after %d MB: %v", i, err), nil
			}
		}
		return "wrote all", nil
	case "openfiles":
		var fds []int
		defer func() {
			for _, fd := range fds {
				syscall.Close(fd)
			}
		}()
		for i := 0; i < ev.N; i++ {
			fd, err := syscall.Open("/dev/null", syscall.O_RDONLY, 0)
			if err != nil {
				return fmt.Sprintf("error after %d: %v", len(fds), err), nil
			}
			fds = append(fds, fd)
		}
		return "opened all", nil
	case "forkbomb":
		// Start up to ev.N sleeping children (raw fork+exec: no descriptor
		// per child) and report how many started and the first error.
		var pids []int
		var firstErr string
		for i := 0; i < ev.N; i++ {
			pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "30"}, &syscall.ProcAttr{})
			if err != nil {
				firstErr = err.Error()
				break
			}
			pids = append(pids, pid)
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
		return map[string]any{"started": len(pids), "err": firstErr}, nil
	case "spin":
		// Leave a goroutine burning CPU between invocations.
		go func() {
			for {
				spins++
			}
		}()
		return "spinning", nil
	case "spawn":
		// Leave a background process running (teardown must kill it).
		c := exec.Command("/bin/sleep", "300")
		if err := c.Start(); err != nil {
			return "error: " + err.Error(), nil
		}
		return c.Process.Pid, nil
	case "exec":
		out, err := exec.Command(ev.Args[0], ev.Args[1:]...).CombinedOutput()
		if err != nil {
			return "error: " + err.Error() + ": " + string(out), nil
		}
		return string(out), nil
	case "syscalls":
		return probeSyscalls(), nil
	case "terminal":
		return probeTerminal(), nil
	case "fds":
		return inheritedFDs, nil
	case "inotify":
		// Create up to ev.N more inotify instances and keep them open
		// (in heldInotify, across invocations); report how many this
		// call created and the error that stopped it.
		created, errText := 0, ""
		for ; created < ev.N; created++ {
			fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
			if err != nil {
				errText = errnoOf(err)
				break
			}
			heldInotify = append(heldInotify, fd)
		}
		return map[string]any{"created": created, "err": errText}, nil
	case "burn":
		// Spin every CPU the sandbox sees for ev.N milliseconds.
		until := time.Now().Add(time.Duration(ev.N) * time.Millisecond)
		done := make(chan struct{})
		for range goruntime.NumCPU() {
			go func() {
				for time.Now().Before(until) {
				}
				done <- struct{}{}
			}()
		}
		for range goruntime.NumCPU() {
			<-done
		}
		return "burned", nil
	}
	return nil, fmt.Errorf("unknown op %q", ev.Op)
}

// probeSyscalls calls each refused syscall with harmless arguments and
// reports the errno each returned.
func probeSyscalls() map[string]string {
	out := map[string]string{}
	try := func(name string, nr uintptr, a ...uintptr) {
		args := make([]uintptr, 6)
		copy(args, a)
		_, _, e := syscall.Syscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5])
		out[name] = errnoName(e)
	}
	try("mount", unix.SYS_MOUNT)
	try("umount2", unix.SYS_UMOUNT2)
	try("unshare", unix.SYS_UNSHARE, unix.CLONE_NEWNS)
	try("setns", unix.SYS_SETNS, 0, 0)
	try("ptrace", unix.SYS_PTRACE, unix.PTRACE_TRACEME)
	try("process_vm_readv", unix.SYS_PROCESS_VM_READV)
	try("process_vm_writev", unix.SYS_PROCESS_VM_WRITEV)
	try("keyctl", unix.SYS_KEYCTL)
	try("add_key", unix.SYS_ADD_KEY)
	try("request_key", unix.SYS_REQUEST_KEY)
	try("bpf", unix.SYS_BPF)
	try("perf_event_open", unix.SYS_PERF_EVENT_OPEN)
	try("userfaultfd", unix.SYS_USERFAULTFD)
	try("io_uring_setup", unix.SYS_IO_URING_SETUP, 1, 0)
	try("io_uring_enter", unix.SYS_IO_URING_ENTER, ^uintptr(0))
	try("io_uring_register", unix.SYS_IO_URING_REGISTER, ^uintptr(0))
	try("open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT)
	try("init_module", unix.SYS_INIT_MODULE)
	try("finit_module", unix.SYS_FINIT_MODULE)
	try("delete_module", unix.SYS_DELETE_MODULE)
	try("kexec_load", unix.SYS_KEXEC_LOAD)
	try("kexec_file_load", unix.SYS_KEXEC_FILE_LOAD)
	try("reboot", unix.SYS_REBOOT)
	try("ioctl_TIOCSTI", unix.SYS_IOCTL, 0, unix.TIOCSTI)
	// CLONE_NEWUSER|CLONE_FS is invalid, so even an unfiltered call
	// cannot create a process: EINVAL without the filter, EPERM with it.
	try("clone_newuser", unix.SYS_CLONE, unix.CLONE_NEWUSER|unix.CLONE_FS)
	try("clone3", unix.SYS_CLONE3)
	return out
}

// probeTerminal tries to reach a terminal the way an attacker would: it
// types '#' with TIOCSTI and calls TIOCLINUX, in the plain and the high-bit
// form of each command (the kernel reads only the low 32 bits), on fds 0-2
// and on /dev/tty, and reports each errno, whether /dev/tty opens, and the
// process's session and controlling terminal from /proc/self/stat.
func probeTerminal() map[string]string {
	out := map[string]string{}
	fds := map[string]int{"fd0": 0, "fd1": 1, "fd2": 2}
	tty, err := syscall.Open("/dev/tty", syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	out["open /dev/tty"] = errnoOf(err)
	if err == nil {
		defer syscall.Close(tty)
		fds["/dev/tty"] = tty
	}
	char := byte('#')
	for name, fd := range fds {
		for cmdName, cmd := range map[string]uintptr{
			"TIOCSTI": unix.TIOCSTI, "TIOCSTI|1<<32": 1<<32 | unix.TIOCSTI,
			"TIOCLINUX": unix.TIOCLINUX, "TIOCLINUX|1<<32": 1<<32 | unix.TIOCLINUX,
		} {
			arg := char
			if cmd&0xffff == unix.TIOCLINUX {
				arg = 6 // TIOCL_GETSHIFTSTATE: a harmless subcommand
			}
			_, _, e := syscall.Syscall(unix.SYS_IOCTL, uintptr(fd), cmd, uintptr(unsafe.Pointer(&arg)))
			out[name+" "+cmdName] = errnoName(e)
		}
	}
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		out["stat"] = err.Error()
		return out
	}
	// pid (comm) state ppid pgrp session tty_nr ...
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	out["session"], out["tty_nr"] = fields[3], fields[4]
	return out
}

func errnoOf(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		return errnoName(e)
	}
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// inheritedFDs lists the descriptors open when the process started, before
// the Lambda client opened any of its own, each with what it refers to.
var inheritedFDs = listFDs()

func listFDs() map[string]string {
	out := map[string]string{}
	dir, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		out["error"] = err.Error()
		return out
	}
	defer syscall.Close(dir)
	buf := make([]byte, 8192)
	var names []string
	for {
		n, err := syscall.ReadDirent(dir, buf)
		if err != nil {
			out["error"] = err.Error()
			return out
		}
		if n <= 0 {
			break
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
	for _, name := range names {
		if name == strconv.Itoa(dir) {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + name)
		if err != nil {
			target = "error: " + err.Error()
		}
		out[name] = target
	}
	return out
}

func errnoName(e syscall.Errno) string {
	switch e {
	case 0:
		return "ok"
	case syscall.EPERM:
		return "EPERM"
	case syscall.ENOSYS:
		return "ENOSYS"
	}
	return unix.ErrnoName(e)
}

func main() {
	lambda.Start(handle)
}
