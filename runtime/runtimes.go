package runtime

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// bootstraps holds the Python and Node.js bootstraps that ship with Stoke.
// They are written once per pool under StateDir and mounted read-only at
// /var/runtime (LAMBDA_RUNTIME_DIR) in every sandbox.
//
//go:embed bootstraps
var bootstraps embed.FS

type runtimeKind int

const (
	kindProvided runtimeKind = iota
	kindPython
	kindNode
)

// runtimeDef describes one runtime name this node runs.
type runtimeDef struct {
	name        string
	kind        runtimeKind
	interpreter string // host path, the same inside the sandbox (/usr is bound)
	script      string // path of the bootstrap under the runtime dir
	// versionPrefix is what `interpreter --version` must print for the
	// runtime's name to be honest (checked once, lazily).
	versionPrefix string
}

var runtimeDefs = []runtimeDef{
	{name: "provided.al2023", kind: kindProvided},
	{name: "provided", kind: kindProvided},
	{name: "python3.11", kind: kindPython, interpreter: "/usr/bin/python3.11", script: "python/bootstrap.py", versionPrefix: "Python 3.11."},
	{name: "nodejs20.x", kind: kindNode, interpreter: "/usr/bin/node", script: "node/bootstrap.js", versionPrefix: "v20."},
}

// interpreterChecks holds one *interpreterCheck per runtime name.
var interpreterChecks sync.Map

type interpreterCheck struct {
	once sync.Once
	err  error
}

// check verifies, once per process, that the host interpreter exists and is
// the version the runtime's name promises.
func (d runtimeDef) check() error {
	if d.interpreter == "" {
		return nil
	}
	v, _ := interpreterChecks.LoadOrStore(d.name, &interpreterCheck{})
	c := v.(*interpreterCheck)
	c.once.Do(func() {
		out, err := exec.Command(d.interpreter, "--version").CombinedOutput()
		if err != nil {
			c.err = fmt.Errorf("%w: %s needs %s: %v", ErrUnsupportedRuntime, d.name, d.interpreter, err)
			return
		}
		if !strings.HasPrefix(strings.TrimSpace(string(out)), d.versionPrefix) {
			c.err = fmt.Errorf("%w: %s needs %s to be %s*, it is %q", ErrUnsupportedRuntime, d.name, d.interpreter, d.versionPrefix, strings.TrimSpace(string(out)))
		}
	})
	return c.err
}

func lookupRuntime(name string) (runtimeDef, bool) {
	for _, d := range runtimeDefs {
		if d.name == name {
			return d, true
		}
	}
	return runtimeDef{}, false
}

// Runtimes lists the runtime names this build knows. Whether the host has
// the interpreter is checked on first use.
func Runtimes() []string {
	names := make([]string, len(runtimeDefs))
	for i, d := range runtimeDefs {
		names[i] = d.name
	}
	slices.Sort(names)
	return names
}

// command returns the candidates for argv[0] and the remaining arguments,
// given where the code and the runtime assets are visible to the process.
func (d runtimeDef) command(taskRoot, runtimeDir, optDir string) (candidates, args []string) {
	switch d.kind {
	case kindPython:
		return []string{d.interpreter}, []string{"-X", "utf8", filepath.Join(runtimeDir, d.script)}
	case kindNode:
		return []string{d.interpreter}, []string{filepath.Join(runtimeDir, d.script)}
	}
	return []string{filepath.Join(taskRoot, "bootstrap"), filepath.Join(optDir, "bootstrap")}, nil
}

// writeBootstraps writes the embedded bootstraps under dir/<content hash>
// (world-readable, so the sandbox user can read them) and returns that path.
func writeBootstraps(dir string) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(bootstraps, "bootstraps", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := bootstraps.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "bootstraps-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	tmp, err := os.MkdirTemp(dir, ".bootstraps-")
	if err != nil {
		return "", err
	}
	err = fs.WalkDir(bootstraps, "bootstraps", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, "bootstraps"), "/")
		target := filepath.Join(tmp, rel)
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := bootstraps.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err == nil {
		err = os.Chmod(tmp, 0o755)
	}
	if err == nil {
		err = os.Rename(tmp, out)
	}
	if err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(out); serr == nil {
			return out, nil // lost a race with another writer: same content
		}
		return "", err
	}
	return out, nil
}

// lambdaEnv builds the bootstrap's environment: the function's variables,
// then Lambda's reserved ones, which win.
func lambdaEnv(fn FunctionSpec, d runtimeDef, logStream, apiAddr, taskRoot, runtimeDir, initType string) []string {
	env := make(map[string]string, len(fn.Environment)+24)
	for k, v := range fn.Environment {
		env[k] = v
	}
	set := func(k, v string) { env[k] = v }
	set("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin")
	set("LD_LIBRARY_PATH", "/lib64:/usr/lib64:"+runtimeDir+":"+runtimeDir+"/lib:"+taskRoot+":"+taskRoot+"/lib:/opt/lib")
	set("LANG", "en_US.UTF-8")
	set("TZ", ":UTC")
	set("AWS_LAMBDA_FUNCTION_NAME", fn.FunctionName)
	set("AWS_LAMBDA_FUNCTION_VERSION", fn.version())
	set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", fmt.Sprint(fn.MemoryMB))
	set("AWS_LAMBDA_LOG_GROUP_NAME", fn.logGroup())
	set("AWS_LAMBDA_LOG_STREAM_NAME", logStream)
	set("AWS_LAMBDA_RUNTIME_API", apiAddr)
	set("AWS_LAMBDA_INITIALIZATION_TYPE", initType)
	set("AWS_REGION", fn.Region)
	set("AWS_DEFAULT_REGION", fn.Region)
	set("AWS_EXECUTION_ENV", "AWS_Lambda_"+d.name)
	set("_HANDLER", fn.Handler)
	set("LAMBDA_TASK_ROOT", taskRoot)
	set("LAMBDA_RUNTIME_DIR", runtimeDir)
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}
